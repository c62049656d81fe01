"""The two small pages that links in mails open: password reset and email verification.

A link carries the email and the code in its fragment (``#email=...&code=...``),
which browsers never send, so neither appears in a request log or a proxy.
The page reads them, removes them from the address bar, and fills a form;
only pressing its button sends the code (a POST to the same path). Opening a
link therefore never uses its code, whatever a mail scanner or link previewer
fetches or runs.

Both pages are rendered once per process from one template, ``page.html``
(Jinja2, autoescaped): plain HTML with one inline script and style, served
with a Content-Security-Policy that allows exactly those (by hash) and nothing
else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from pathlib import Path

import azure.functions as func
import jinja2

__all__ = ["PAGES", "page_response"]

_FOLDER = Path(__file__).resolve().parent
#: What each page says and asks for.
_WORDING: dict[str, dict[str, object]] = {
    "password_reset": {
        "title": "Reset your password",
        "new_password": True,
        "button": "Set the new password",
        "success": "Your password was changed. Go back to the app and sign in with your new password.",
    },
    "email_verify": {
        "title": "Verify your email",
        "new_password": False,
        "button": "Verify my email",
        "success": "Your email is verified. You can go back to the app.",
    },
}
PAGES = tuple(_WORDING)


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
    if name not in _WORDING:
        raise ValueError(f"no page {name!r}")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_FOLDER), autoescape=True, undefined=jinja2.StrictUndefined
    )
    html = environment.get_template("page.html").render(**_WORDING[name])
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
