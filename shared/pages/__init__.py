"""The two small pages that links in mails open: password reset and email verification.

A link carries the email and the code in its fragment (``#email=...&code=...``),
which browsers never send, so neither appears in a request log or a proxy.
The page reads them, removes them from the address bar, and fills a form;
only pressing its button sends the code (a POST to the same path). Opening a
link therefore never uses its code, whatever a mail scanner or link previewer
fetches or runs.

Pages are plain HTML with one inline script and style, served with a
Content-Security-Policy that allows exactly those (by hash) and nothing else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

import azure.functions as func

__all__ = ["PAGES", "page_response"]

PAGES = ("password_reset", "email_verify")
_FOLDER = Path(__file__).resolve().parent


def page_response(name: str) -> func.HttpResponse:
    """Return the page ``name`` with its security headers.

    :raises ValueError: there is no such page.
    """
    body, policy = _page(name)
    return func.HttpResponse(
        body,
        status_code=200,
        headers={
            # Explicit: the Functions worker adds the charset to text/* on its own, other hosts may not.
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": policy,
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
        mimetype="text/html",
        charset="utf-8",
    )


@functools.cache
def _page(name: str) -> tuple[bytes, str]:
    if name not in PAGES:
        raise ValueError(f"no page {name!r}")
    html = (_FOLDER / f"{name}.html").read_text(encoding="utf-8")
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hashes(html, 'script')}",
            f"style-src {_hashes(html, 'style')}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return html.encode("utf-8"), policy


def _hashes(html: str, tag: str) -> str:
    """The CSP source list allowing exactly the inline ``tag`` elements of ``html``."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(b.encode("utf-8")).digest()).decode("ascii") for b in blocks)
    return " ".join(f"'sha256-{digest}'" for digest in digests) or "'none'"
