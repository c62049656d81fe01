"""An ``http`` output binding's value as the worker encodes it for the host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import azure.functions as func


@dataclass(frozen=True)
class HttpResponseData:
    """An ``http`` output as the worker sends it to the host: status, headers (cookies apart), body."""

    status_code: int
    headers: tuple[tuple[str, str], ...]
    cookies: tuple[str, ...]
    body: bytes


def encode_http_response(value: Any) -> HttpResponseData:
    """Encode an ``http`` output binding's value, as ``azure.functions`` ``HttpResponseConverter.encode``.

    A ``func.HttpResponse`` gets ``content-type`` when it has none: its mimetype, with
    ``; charset=<charset>`` for ``text/*``; ``Set-Cookie`` headers travel apart, as
    cookies. A ``str`` is the response body for the host, which answers it with 200
    (``HttpBinding.CreateResult``; its sniffing of JSON "response objects" is not
    reproduced).

    :raises TypeError: any other value (``None`` included), with the worker's message; the
        invocation then fails.
    """
    if isinstance(value, str):
        return HttpResponseData(200, (("content-type", "text/plain; charset=utf-8"),), (), value.encode())
    if isinstance(value, func.HttpResponse):
        headers = value.headers
        pairs = [(str(k), str(v)) for k, v in headers.items()]
        if not any(k.lower() == "content-type" for k, _ in pairs):
            mimetype = value.mimetype
            content_type = (
                f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype
            )
            pairs.append(("content-type", content_type))
        cookies = tuple(v for k, v in pairs if k.lower() == "set-cookie")
        kept = tuple((k, v) for k, v in pairs if k.lower() != "set-cookie")
        return HttpResponseData(int(value.status_code), kept, cookies, value.get_body() or b"")
    python_type = type(value).__name__
    raise TypeError(
        f'unable to encode outgoing TypedData: unsupported type "http" for Python type "{python_type}"'
    )
