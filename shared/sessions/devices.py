"""Sessions per device: what is stored of each, and which are live.

Each session is one property of the account row, ``S_<session id>``, holding
a small JSON document (created, last seen, the ``User-Agent``, how it was
proven, and the account's session version when it started; and, for sessions
started since refresh tokens, the keyed digest of the live refresh token, its
generation and when it was issued: see :mod:`shared.tokens.refresh_tokens`). So the gate's one
point read of the account row tells at once whether the token's session is
live, whether the account is enabled, and whether its session version is
current; listing a user's sessions costs no read at all beyond the gate's.

A session is live while its property exists and its version is the account's
current one. Raising the session version (a password change or reset,
``DELETE /api/sessions``, disabling the account) ends every session at once
without touching the properties; they are dropped the next time the row is
rewritten. Ending one session rewrites the row without its property,
guarded by the row's ETag.
"""

from __future__ import annotations

import contextvars
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "SESSION_PROPERTY_PREFIX",
    "USER_AGENT_MAX_LENGTH",
    "DeviceSession",
    "current_user_agent",
    "new_session",
    "reset_user_agent",
    "serving_user_agent",
    "sessions_in",
    "touch_interval",
]

SESSION_PROPERTY_PREFIX = "S_"
USER_AGENT_MAX_LENGTH = 200
#: Last-seen is written at most this often per session (or a quarter of the idle timeout, if shorter).
TOUCH_INTERVAL = timedelta(minutes=1)


_user_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_agent", default=None)


def serving_user_agent(user_agent: str | None) -> contextvars.Token[str | None]:
    """Note the ``User-Agent`` of the request this thread serves (a session started now records it)."""
    return _user_agent.set(user_agent)


def reset_user_agent(token: contextvars.Token[str | None]) -> None:
    _user_agent.reset(token)


def current_user_agent() -> str | None:
    """The ``User-Agent`` of the request this thread serves, if any."""
    return _user_agent.get()


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """One device's session."""

    id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    amr: tuple[str, ...]
    version: int
    # -- the session's refresh token (shared.tokens.refresh_tokens): its keyed digest, generation, issue time
    refresh_digest: str = ""
    refresh_generation: int = 0
    refresh_issued_at: datetime | None = None
    # --

    @property
    def property_name(self) -> str:
        """The account row property that holds this session."""
        return SESSION_PROPERTY_PREFIX + self.id

    def to_property(self) -> dict[str, str]:
        """This session as an account row property."""
        document = {
            "c": int(self.created_at.timestamp()),
            "l": int(self.last_seen_at.timestamp()),
            "ua": self.user_agent,
            "amr": list(self.amr),
            "v": self.version,
        }
        if self.refresh_digest and self.refresh_issued_at is not None:  # the refresh token, if any
            document |= {
                "rd": self.refresh_digest,
                "rg": self.refresh_generation,
                "ri": int(self.refresh_issued_at.timestamp()),
            }
        return {self.property_name: json.dumps(document, separators=(",", ":"))}

    def seen(self, at: datetime) -> DeviceSession:
        return replace(self, last_seen_at=at.replace(microsecond=0))


def new_session(*, version: int, user_agent: str | None, amr: tuple[str, ...]) -> DeviceSession:
    """A session starting now, with a fresh random id (96 bits, hex: valid in a property name)."""
    now = datetime.now(UTC).replace(microsecond=0)
    agent = (user_agent or "").strip()[:USER_AGENT_MAX_LENGTH]
    return DeviceSession(secrets.token_hex(12), now, now, agent, amr, version)


def sessions_in(entity: Mapping[str, Any]) -> tuple[DeviceSession, ...]:
    """Every session stored on an account row (live or ended by a newer session version)."""
    found = []
    for name, value in entity.items():
        if not name.startswith(SESSION_PROPERTY_PREFIX) or not isinstance(value, str) or not value:
            continue
        try:
            document = json.loads(value)
            found.append(
                DeviceSession(
                    id=name[len(SESSION_PROPERTY_PREFIX) :],
                    created_at=datetime.fromtimestamp(int(document["c"]), UTC),
                    last_seen_at=datetime.fromtimestamp(int(document["l"]), UTC),
                    user_agent=str(document.get("ua", "")),
                    amr=tuple(str(method) for method in document.get("amr", [])),
                    version=int(document["v"]),
                    refresh_digest=str(document.get("rd", "")),
                    refresh_generation=int(document.get("rg", 0)),
                    refresh_issued_at=datetime.fromtimestamp(int(document["ri"]), UTC)
                    if "ri" in document
                    else None,
                )
            )
        except (ValueError, TypeError, KeyError, OverflowError):
            continue  # not ours to read; left alone
    return tuple(found)


def touch_interval(idle_timeout: timedelta | None) -> timedelta:
    """How stale last-seen may get before the gate writes it again."""
    if idle_timeout is None:
        return TOUCH_INTERVAL
    return min(TOUCH_INTERVAL, idle_timeout / 4)
