"""``host.json`` as the Functions host reads it, app settings overriding its values."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The prefix of app settings that override ``host.json`` (``AzureFunctionsJobHost__a__b``).
HOST_JSON_OVERRIDE_PREFIX = "AzureFunctionsJobHost"


class HostJson:
    """``host.json`` as the Functions host's configuration sees it.

    Keys compare case-insensitively, and an app setting
    ``AzureFunctionsJobHost__<path>__<key>`` (``:`` works as ``__``) overrides
    the file's ``<path>.<key>``: the host loads ``host.json`` into its
    configuration under ``AzureFunctionsJobHost`` and the environment over it
    (learn.microsoft.com/azure/azure-functions/functions-host-json#override-hostjson-values).
    Values from the file keep their JSON types; overrides are strings.
    """

    def __init__(self, document: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self._values: dict[str, Any] = {}
        self._flatten((), document)
        prefix = HOST_JSON_OVERRIDE_PREFIX.lower() + ":"
        for name, value in environ.items():
            key = name.replace("__", ":").lower()
            if key.startswith(prefix):
                self._values[key[len(prefix) :]] = value

    @classmethod
    def load(cls, root: Path, environ: Mapping[str, str] | None = None) -> HostJson:
        """Read ``root/host.json`` (none is an empty one) with ``environ``'s overrides (default: ours)."""
        path = root / "host.json"
        document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return cls(document, os.environ if environ is None else environ)

    def _flatten(self, path: tuple[str, ...], value: Any) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                self._flatten((*path, str(key)), child)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                self._flatten((*path, str(index)), child)
        elif path:
            self._values[":".join(path).lower()] = value

    def get(self, *path: str, default: Any = None) -> Any:
        """The value at ``path`` (``get("extensions", "http", "routePrefix")``), or ``default``."""
        return self._values.get(":".join(path).lower(), default)

    def section(self, *path: str) -> dict[str, Any]:
        """The values directly under ``path``, by lower-cased key."""
        prefix = ":".join(path).lower() + ":"
        return {
            key[len(prefix) :]: value
            for key, value in self._values.items()
            if key.startswith(prefix) and ":" not in key[len(prefix) :]
        }


def route_prefix(root: Path, environ: Mapping[str, str] | None = None) -> str:
    """Return ``extensions.http.routePrefix`` of ``host.json`` (default ``api``), overrides applied."""
    prefix = HostJson.load(root, environ).get("extensions", "http", "routePrefix", default="api")
    return str(prefix).strip("/")
