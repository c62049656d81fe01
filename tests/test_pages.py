"""The pages mail links open: served with strict headers, and a policy that allows their own script only."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

import email_verify
import password_reset
from shared.pages import PAGES, page_response
from tests.conftest import AppEnvironment, http_request


@pytest.mark.parametrize("name", PAGES)
def test_headers(name: str) -> None:
    """No framing, no referrer, no caching, no sniffing; HTML in UTF-8."""
    response = page_response(name)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", PAGES)
def test_the_policy_allows_exactly_the_inline_script_and_style(name: str) -> None:
    """The CSP hashes match the page's own script and style; nothing else may load or frame it."""
    response = page_response(name)
    body = response.get_body().decode()
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split(";")
    )
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", body, flags=re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert "innerHTML" not in body


@pytest.mark.parametrize("name", PAGES)
def test_opening_a_page_sends_nothing_by_itself(name: str) -> None:
    """The script posts only from the form's submit handler: opening the link never uses the code."""
    body = page_response(name).get_body().decode()
    script = re.findall(r"<script>(.*?)</script>", body, flags=re.DOTALL)[0]
    before_submit = script.split('addEventListener("submit"', 1)[0]
    assert "fetch(" not in before_submit
    assert "history.replaceState" in before_submit, "the fragment leaves the address bar"


def test_unknown_page() -> None:
    """Only the two pages exist."""
    with pytest.raises(ValueError, match="no page"):
        page_response("other")


@pytest.mark.parametrize("function", [password_reset, email_verify])
def test_get_serves_the_page_without_settings(function: object, app_env: AppEnvironment) -> None:
    """GET on the reset and verification routes is the page, even where mail is not configured."""
    response = function.main(http_request("GET", "x"))  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert b"<form" in response.get_body()
