"""Create ``local.settings.json`` from the example, with a fresh random signing key.

``python -m tools.devhost.local_settings`` does nothing when the file exists, so a key
once generated stays (and tokens issued with it stay valid across restarts).
A file from before mail was added lacks the mail settings, and one from before
the cleanup its schedule; ``make run`` adds them from the example
(:func:`add_missing_settings`), never changing a value already there.

The local host reads the file as ``func start`` does (:func:`load_local_settings`):
its ``Values`` into the environment, its ``Host`` section for serving (:class:`HostConfig`).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.devhost.cors import CorsPolicy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = PROJECT_ROOT / "local.settings.json.example"
#: How the local run sends mail: to the mail catcher ``make run`` starts. Added together or not at all.
SMTP_SETTINGS = ("AUTH_MAIL_SMTP_HOST", "AUTH_MAIL_SMTP_PORT", "AUTH_MAIL_SMTP_SECURITY")
#: The rest of the mail settings of the example, each added when missing.
MAIL_SETTINGS = ("AUTH_MAIL_QUEUE", "AUTH_MAIL_FROM", "AUTH_APP_NAME", "AUTH_PUBLIC_BASE_URL")
#: Named as ``%SETTING%`` in a function.json: the host reports the function in error while unset.
HOST_SETTINGS = ("AUTH_CLEANUP_SCHEDULE",)
#: A file naming either of these has chosen its mail transport: the catcher's settings stay out.
TRANSPORTS = ("AUTH_MAIL_SMTP_HOST", "AUTH_MAIL_ACS_ENDPOINT")


def new_signing_private_key() -> str:
    """A new P-256 private key (PKCS#8 PEM) for ``AUTH_SIGNING_PRIVATE_KEY`` under ES256."""
    from shared.settings.signing import SigningAlgorithm, generate_private_key  # noqa: PLC0415

    return generate_private_key(SigningAlgorithm.ES256)


def apply_local_settings(path: Path, environ: MutableMapping[str, str]) -> dict[str, Any]:
    """Copy the ``Values`` of a ``local.settings.json`` into ``environ`` without overriding.

    This is what ``func start`` does. :returns: the whole document (``{}`` if missing).
    """
    if not path.exists():
        return {}
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for name, value in (document.get("Values") or {}).items():
        environ.setdefault(name, str(value))
    return document


@dataclass(frozen=True)
class HostConfig:
    """What ``local.settings.json`` ``Host`` says about serving (``HostStartSettings`` in Core Tools)."""

    port: int = 7071
    cors_origins: tuple[str, ...] = ()
    cors_credentials: bool = False

    @property
    def cors(self) -> CorsPolicy | None:
        """The CORS policy ``func start`` builds, or ``None`` when ``Host.CORS`` is empty."""
        if not self.cors_origins:
            return None
        return CorsPolicy(self.cors_origins, self.cors_credentials)


def _bool_setting(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def load_local_settings(path: Path, environ: dict[str, str] | None = None) -> HostConfig:
    """Copy the ``Values`` of a ``local.settings.json`` into ``environ`` (never overriding).

    ``Host`` is read as Core Tools' ``HostStartSettings`` (names in any case):
    ``CORS`` is split at commas, empty entries dropped and nothing trimmed
    (``Startup``: ``corsOrigins.Split(',', RemoveEmptyEntries)``).

    :returns: what its ``Host`` section says; defaults when the file is missing.
    """
    document = apply_local_settings(path, os.environ if environ is None else environ)
    host = {str(key).lower(): value for key, value in (document.get("Host") or {}).items()}
    cors = str(host.get("cors") or "")
    return HostConfig(
        port=int(host.get("localhttpport") or 7071),
        cors_origins=tuple(origin for origin in cors.split(",") if origin),
        cors_credentials=_bool_setting(host.get("corscredentials", False)),
    )


def create_local_settings(target: Path = PROJECT_ROOT / "local.settings.json") -> bool:
    """Write ``target`` from the project's example if missing; return whether it was written."""
    if target.exists():
        return False
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    values = document.setdefault("Values", {})
    if not values.get("AUTH_SIGNING_KEY"):
        # 32 random bytes as hex: valid for AUTH_TOKEN_FORMAT=appservice and zumo alike.
        values["AUTH_SIGNING_KEY"] = secrets.token_hex(32)
    if not values.get("AUTH_ENCRYPTION_KEY"):
        # Seals second-factor secrets at rest (AES-256-GCM): 32 random bytes as hex.
        values["AUTH_ENCRYPTION_KEY"] = secrets.token_hex(32)
    if not values.get("AUTH_SIGNING_PRIVATE_KEY"):
        # Signs tokens once AUTH_TOKEN_ALGORITHM is ES256 (docs/tokens.md); unused under HS256.
        values["AUTH_SIGNING_PRIVATE_KEY"] = new_signing_private_key()
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    target.chmod(0o600)
    return True


def missing_mail_settings(values: Mapping[str, object], example: Mapping[str, object]) -> dict[str, object]:
    """The example's mail settings that ``values`` lacks.

    A name present counts as set, even if empty. The SMTP settings come as a
    group, and only when ``values`` names no transport: the catcher's
    ``AUTH_MAIL_SMTP_SECURITY=none`` must never join a real relay's host.
    """
    names = [*MAIL_SETTINGS]
    if not any(name in values for name in TRANSPORTS):
        names += SMTP_SETTINGS
    return {name: example[name] for name in names if name not in values and name in example}


def add_missing_settings(target: Path = PROJECT_ROOT / "local.settings.json") -> list[str]:
    """Add what an existing ``target`` lacks (the example's mail and host settings, an encryption key).

    Values already in ``target`` are kept as they are; nothing is written when
    nothing is missing (or ``target`` does not exist).

    :returns: the names added.
    """
    if not target.exists():
        return []
    document = json.loads(target.read_text(encoding="utf-8"))
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))["Values"]
    values = document.setdefault("Values", {})
    missing = missing_mail_settings(values, example)
    missing |= {name: example[name] for name in HOST_SETTINGS if name not in values and name in example}
    if not values.get("AUTH_ENCRYPTION_KEY"):
        # A file from before the second factor: give it its own key, as a new file gets.
        missing["AUTH_ENCRYPTION_KEY"] = secrets.token_hex(32)
    if not values.get("AUTH_SIGNING_PRIVATE_KEY"):
        # A file from before ES256: its own private key too (HS256 stays the algorithm until changed).
        missing["AUTH_SIGNING_PRIVATE_KEY"] = new_signing_private_key()
    if not missing:
        return []
    values.update(missing)
    # Written beside and renamed over: an interrupted write must not lose the signing key.
    partial = target.with_name(f".{target.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(json.dumps(document, indent=2) + "\n")
    partial.chmod(target.stat().st_mode & 0o777)
    os.replace(partial, target)
    return list(missing)


if __name__ == "__main__":
    if create_local_settings():
        print("Created local.settings.json with new random keys", file=sys.stderr)
    elif added := add_missing_settings():
        print(f"Added to local.settings.json: {', '.join(added)}", file=sys.stderr)
