"""The pages mail links open: served with strict headers, and a policy that allows their own script only."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

import email_verify
import password_reset
from shared.http.pages import PAGES, page_response
from tests.conftest import AppEnvironment, http_request


@pytest.mark.parametrize("name", PAGES)
def test_headers(name: str) -> None:
    """No framing, no referrer, no caching, no sniffing; HTML in UTF-8."""
    response = page_response(name)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.charset == "utf-8"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Content-Security-Policy" in response.headers
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
    assert policy["form-action"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "innerHTML" not in body
    assert not re.search(r"<(script|link|img|iframe)[^>]*\b(src|href)=", body), "nothing external"


@pytest.mark.parametrize("name", PAGES)
def test_the_code_field_is_prefillable_and_editable(name: str) -> None:
    """The code field is a numeric one-time-code input that the user may also type into."""
    body = page_response(name).get_body().decode()
    (field,) = re.findall(r'<input id="code"[^>]*>', body)
    assert 'inputmode="numeric"' in field
    assert 'autocomplete="one-time-code"' in field
    assert "readonly" not in field
    assert "disabled" not in field


@pytest.mark.parametrize("name", PAGES)
def test_opening_a_page_sends_nothing_by_itself(name: str) -> None:
    """The script posts only from the form's submit handler: opening the link never uses the code."""
    body = page_response(name).get_body().decode()
    script = re.findall(r"<script>(.*?)</script>", body, flags=re.DOTALL)[0]
    before_submit = script.split('addEventListener("submit"', 1)[0]
    assert "fetch(" not in before_submit
    assert "history.replaceState" in before_submit, "the fragment leaves the address bar"
    assert "fetch(location.pathname," in script, "the code goes to the page's own path, same origin"


@pytest.mark.parametrize(
    ("name", "heading"), [("password_reset", "Reset your password"), ("email_verify", "Verify your email")]
)
def test_titles_are_neutral(name: str, heading: str) -> None:
    """Title and heading say what the page does, nothing about the account."""
    body = page_response(name).get_body().decode()
    assert f"<title>{heading}</title>" in body
    assert f"<h1>{heading}</h1>" in body


def test_the_reset_page_asks_for_the_new_password_twice() -> None:
    """Two password fields that password managers know to fill with a new password."""
    body = page_response("password_reset").get_body().decode()
    assert len(re.findall(r'<input[^>]*type="password"[^>]*autocomplete="new-password"', body)) == 2


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
