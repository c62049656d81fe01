"""Email validation and normalization."""

from __future__ import annotations

import pytest

from shared.accounts.emails import normalize_email
from shared.errors import InvalidRequest


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice@Example.COM", "alice@example.com"),
        ("  alice@example.com\t", "alice@example.com"),
        ("a/b#c?d%e@example.com", "a/b#c?d%e@example.com"),
        ("José@Example.com", "josé@example.com"),
        ("Jose\u0301@example.com", "josé@example.com"),
        ("user@BÜCHER.example", "user@bücher.example"),
        ("user@xn--bcher-kva.example", "user@bücher.example"),
    ],
)
def test_normalizes_to_one_canonical_form(raw: str, normalized: str) -> None:
    """Case, surrounding space, Unicode form and IDNA spelling do not make a new address."""
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "alice",
        "alice@",
        "@example.com",
        "alice@@example.com",
        "alice@example..com",
        "alice example@example.com",
        "alice@exa\nmple.com",
        "ali\x00ce@example.com",
        "alice@localhost",
        "a\\b@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_refuses_invalid_addresses(raw: str) -> None:
    """Anything that is not a deliverable-looking address is a 400, never a crash."""
    with pytest.raises(InvalidRequest):
        normalize_email(raw)
