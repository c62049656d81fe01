"""Create ``local.settings.json`` from the example, with a fresh random signing key.

``python -m tools.local_settings`` does nothing when the file exists, so a key
once generated stays (and tokens issued with it stay valid across restarts).
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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


def create_local_settings(target: Path = PROJECT_ROOT / "local.settings.json") -> bool:
    """Write ``target`` from the project's example if missing; return whether it was written."""
    if target.exists():
        return False
    document = json.loads((PROJECT_ROOT / "local.settings.json.example").read_text(encoding="utf-8"))
    values = document.setdefault("Values", {})
    if not values.get("AUTH_SIGNING_KEY"):
        # 32 random bytes as hex: valid for AUTH_TOKEN_FORMAT=appservice and zumo alike.
        values["AUTH_SIGNING_KEY"] = secrets.token_hex(32)
    target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    target.chmod(0o600)
    return True


if __name__ == "__main__":
    if create_local_settings():
        print("Created local.settings.json with a new random AUTH_SIGNING_KEY", file=sys.stderr)
