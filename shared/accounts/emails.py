"""Validation and normalization of email addresses (through email-validator)."""

from __future__ import annotations

from shared.errors import InvalidRequest

__all__ = ["MAX_EMAIL_LENGTH", "normalize_email"]

#: RFC 5321 path limit; longer input is refused before it is parsed.
MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> str:
    """Return the one canonical form of an email address.

    Surrounding white space is trimmed; the address is checked for syntax only
    (no DNS lookups); the domain is IDNA-normalized and the whole address is
    NFC-normalized and lower-cased, so ``Alice@Example.COM`` and
    ``alice@example.com`` name the same account.

    :raises InvalidRequest: the address is not a valid email address.
    """
    # Imported on first use: compiling its patterns costs ~20 ms of cold start.
    from email_validator import EmailNotValidError, validate_email  # noqa: PLC0415

    candidate = raw.strip()
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidRequest("The email address is not valid.")
    try:
        validated = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidRequest("The email address is not valid.") from None
    return validated.normalized.lower()
