"""Refresh tokens: opaque, single use, rotated on every use, bound to one device session.

A refresh token reads ``r1.<user id, base64url>.<session id>.<generation>.<secret>``.
The user and session ids only say where to look (the account row and its
session property); what proves it is the secret, of which the service keeps
only a keyed digest (HMAC-SHA256 under a key derived from ``AUTH_SIGNING_KEY``)
on the device session, with the token's generation and when it was issued.

The first token of a session has a random secret (256 bits). Each use spends
it and returns its successor, whose secret is derived from the spent token
with a keyed function (HMAC-SHA256 under a second derived key). So:

- a retry of the token spent last (a lost answer, a flaky mobile network, or
  the loser of two concurrent redemptions) gets the same successor again,
  without the successor ever being stored in clear;
- a token several rotations old is recognised as genuine by deriving forward
  from it to the stored digest: its use is reuse (a copy of the token is in
  other hands), and the session ends. A forged token derives to nothing and
  is merely invalid, so knowing a user's ids (they are in every access token)
  is not enough to end their session.

Only the token spent last gets the grace, and only for ``AUTH_REFRESH_REUSE_SECONDS``
after its successor was issued; a token two or more rotations old is reuse
even inside that window.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

__all__ = [
    "MAX_REFRESH_TOKEN_LENGTH",
    "MAX_WALK",
    "Redemption",
    "RefreshState",
    "RefreshToken",
    "classify",
    "digest",
    "first_secret",
    "parse",
    "successor",
]

_PREFIX = "r1"
#: Longer refresh tokens are refused before any parsing.
MAX_REFRESH_TOKEN_LENGTH = 1024
#: The most rotations an old token is derived forward to tell reuse from a forgery.
MAX_WALK = 10_000
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
_SESSION_ID = re.compile(r"[0-9a-f]{24}")
_GENERATION = re.compile(r"0|[1-9][0-9]{0,17}")


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One refresh token: where its session is, which generation it is, and its secret."""

    user_id: str
    session_id: str
    generation: int
    secret: str = field(repr=False)

    def __str__(self) -> str:
        user = base64.urlsafe_b64encode(self.user_id.encode("utf-8")).rstrip(b"=").decode("ascii")
        return f"{_PREFIX}.{user}.{self.session_id}.{self.generation}.{self.secret}"


@dataclass(frozen=True, slots=True)
class RefreshState:
    """What a device session keeps of its live refresh token."""

    digest: str
    generation: int
    issued_at: datetime


class Redemption(Enum):
    """What presenting a refresh token to its session amounts to."""

    #: The live token: spend it, store its successor.
    ROTATE = "rotate"
    #: The token spent last, within the grace (or a lost race): answer with the same successor.
    RETRY = "retry"
    #: A genuine spent token outside the grace, or two or more rotations old: end the session.
    REUSE = "reuse"
    #: Not a token of this session.
    INVALID = "invalid"


def parse(raw: str) -> RefreshToken | None:
    """The refresh token ``raw`` spells, or ``None`` if it is not one."""
    if len(raw) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    parts = raw.split(".")
    if len(parts) != 5 or parts[0] != _PREFIX:
        return None
    _, user, session_id, generation, secret = parts
    if not (
        _SESSION_ID.fullmatch(session_id) and _GENERATION.fullmatch(generation) and _SECRET.fullmatch(secret)
    ):
        return None
    try:
        user_id = base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not user_id or base64.urlsafe_b64encode(user_id.encode("utf-8")).rstrip(b"=").decode() != user:
        return None
    return RefreshToken(user_id, session_id, int(generation), secret)


def first_secret(keys: tuple[bytes, ...], session_id: str) -> tuple[str, str]:
    """The secret of a session's first refresh token (256 random bits) and the digest to store.

    The digest covers the session id, the generation and the secret, not the
    user id, so it can be stored before an account (and its user id) exists.
    """
    secret = secrets.token_urlsafe(32)
    return secret, digest(keys, RefreshToken("", session_id, 0, secret))


def digest(keys: tuple[bytes, ...], token: RefreshToken) -> str:
    """The keyed digest of ``token`` stored on its session (under the current signing key)."""
    return _digest(keys[0], token)


def successor(keys: tuple[bytes, ...], token: RefreshToken) -> RefreshToken:
    """The token that replaces ``token``: the next generation, its secret a keyed function of ``token``."""
    mac = hmac.new(_derived(keys[0], b"refresh-token successor"), _material(token), hashlib.sha256).digest()
    secret = base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
    return RefreshToken(token.user_id, token.session_id, token.generation + 1, secret)


def classify(
    keys: tuple[bytes, ...],
    token: RefreshToken,
    state: RefreshState,
    *,
    now: datetime,
    grace: timedelta,
    lost_race: bool = False,
) -> Redemption:
    """What presenting ``token`` to the session holding ``state`` amounts to.

    ``lost_race``: this request tried to spend ``token`` and another wrote the
    session first; if that write stored ``token``'s successor, this is a retry
    whatever the grace.
    """
    behind = state.generation - token.generation
    if behind == 0:
        return Redemption.ROTATE if _matches(keys, token, state.digest) else Redemption.INVALID
    if behind < 0 or behind > MAX_WALK:
        return Redemption.INVALID
    derived = token
    for _ in range(behind):
        derived = successor(keys, derived)
    if not _matches(keys, derived, state.digest):
        return Redemption.INVALID
    if behind == 1 and (lost_race or now - state.issued_at <= grace):
        return Redemption.RETRY
    return Redemption.REUSE


def _matches(keys: tuple[bytes, ...], token: RefreshToken, stored: str) -> bool:
    """Whether ``token``'s digest under any signing key (a rotation window) is ``stored``; constant time."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(_digest(key, token), stored)
    return found


def _digest(key: bytes, token: RefreshToken) -> str:
    return hmac.new(_derived(key, b"refresh-token digest"), _material(token), hashlib.sha256).hexdigest()


def _material(token: RefreshToken) -> bytes:
    """What the digest and the successor cover: the session, the generation and the secret."""
    return f"{token.session_id}\x00{token.generation}\x00{token.secret}".encode("ascii")


@functools.lru_cache(maxsize=16)
def _derived(signing_key: bytes, purpose: bytes) -> bytes:
    """A key for one purpose only, derived from a signing key (HKDF-SHA256)."""
    # Imported on first use, out of every function's cold start.
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(signing_key)
