"""Time-based one-time passwords (RFC 6238) for authenticator apps, refusing replays (over pyotp).

The parameters are the ones every authenticator app supports: HMAC-SHA1,
6 digits, 30-second steps, and 160-bit secrets (RFC 4226 section 4 recommends
160 bits). A code is accepted for the step it was made in, the one before or
the one after (about 30 seconds of clock drift either way), never two away,
and only if its step is later than the last step used: the caller stores the
step :func:`accepted_step` returns, so that neither that code nor any earlier
one works again (RFC 6238 section 5.2).
"""

from __future__ import annotations

import hmac
import math
from datetime import datetime
from urllib.parse import quote, urlencode

import pyotp

__all__ = [
    "ALGORITHM",
    "DIGITS",
    "DRIFT_STEPS",
    "PERIOD_SECONDS",
    "SECRET_LENGTH",
    "accepted_step",
    "new_secret",
    "provisioning_uri",
    "qr_code_data_uri",
    "time_step",
]

ALGORITHM = "SHA1"
DIGITS = 6
PERIOD_SECONDS = 30
#: Steps accepted either side of the current one.
DRIFT_STEPS = 1
#: Base32 characters of a secret: 32 x 5 = 160 bits.
SECRET_LENGTH = 32
#: 10000-01-01T00:00:00Z, the first instant pyotp refuses.
_END_OF_TIME = 253_402_300_800


def new_secret() -> str:
    """Return a new random secret: 160 bits as 32 uppercase base32 characters, no padding."""
    return pyotp.random_base32(length=SECRET_LENGTH)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """Return the ``otpauth://totp/...`` URI that adds ``secret`` to an authenticator app.

    The form is Google's Key URI Format:
    ``otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30``,
    with the issuer and account percent-encoded in full, but for ``@`` (so a
    ``/``, ``?``, ``#``, ``&`` or space in either stays inside its part; pyotp's
    own ``provisioning_uri`` leaves ``/`` bare). The parameters are spelled out
    even though they are the defaults (pyotp omits them), for apps that do not
    assume them.

    :raises ValueError: ``account`` or ``issuer`` is empty or contains a colon,
        which the format forbids in either (it separates them in the label).
    """
    for name, value in (("account", account), ("issuer", issuer)):
        if not value or ":" in value:
            raise ValueError(f"the {name} must be non-empty and contain no colon")
    label = f"{quote(issuer, safe='@')}:{quote(account, safe='@')}"
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": ALGORITHM,
            "digits": DIGITS,
            "period": PERIOD_SECONDS,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def qr_code_data_uri(uri: str, *, scale: int = 4) -> str:
    """Return the QR code of ``uri`` as an SVG ``data:`` URI, for an ``<img src>`` on the set-up page.

    Error correction level M (segno may raise it when that costs no size);
    ``scale`` is the size of one module in SVG units. Never a Micro QR code,
    which authenticator apps do not read.
    """
    import segno  # noqa: PLC0415 - only set-up draws QR codes; keeps segno out of every cold start

    return segno.make_qr(uri, error="m").svg_data_uri(scale=scale)


def time_step(at: datetime | float) -> int:
    """Return the RFC 6238 counter of an instant: whole 30-second steps since the Unix epoch.

    ``at`` is a timezone-aware ``datetime`` or a Unix timestamp in seconds.

    :raises ValueError: ``at`` is a naive ``datetime``, not a finite number, or
        before 1970 or from the year 10000 on.
    """
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("the instant must be a timezone-aware datetime")
        timestamp = at.timestamp()
    else:
        try:
            timestamp = float(at)
        except OverflowError:
            raise ValueError("the instant must be from 1970 up to the year 9999") from None
    if not 0 <= timestamp < _END_OF_TIME:  # NaN fails too
        raise ValueError("the instant must be from 1970 up to the year 9999")
    return math.floor(timestamp) // PERIOD_SECONDS


def accepted_step(secret: str, code: str, *, now: datetime | float, last_used_step: int | None) -> int | None:
    """Return the time step ``code`` was made for, if it is to be accepted now; otherwise None.

    Accepted: a 6-digit code (spaces allowed, as apps show ``123 456``) of step
    ``time_step(now)`` - 1, + 0 or + 1 whose step is greater than
    ``last_used_step`` (None: no code used yet). Store the returned step as the
    new ``last_used_step`` in the same write that accepts the sign-in, so the
    code, and every earlier one, is refused from then on.

    A malformed code is refused before any computing. Otherwise all three
    candidates are computed and compared (in constant time) before deciding,
    so the time taken does not tell which step, if any, matched.

    :raises ValueError: ``secret`` is not base32 of at least 112 bits, or ``now``
        is out of range (see :func:`time_step`).
    """
    candidate = "".join(code.split())
    if len(candidate) != DIGITS or not candidate.isascii() or not candidate.isdigit():
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS)
    current = time_step(now)
    given = candidate.encode("ascii")
    matches: list[tuple[int, bool]] = []
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if step < 0:  # only in the first 30 seconds of 1970
            continue
        expected = otp.generate_otp(step).encode("ascii")
        matches.append((step, hmac.compare_digest(expected, given)))
    # The latest matching step wins (two steps share a code once in a million): the more it burns, the safer.
    later = [
        step for step, matched in matches if matched and (last_used_step is None or step > last_used_step)
    ]
    return max(later, default=None)
