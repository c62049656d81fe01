"""A local host for the app's HTTP, queue and timer functions, for machines without Core Tools.

``python -m tools.devhost [--host H] [--port P]`` serves every function folder
of the project according to its ``function.json``, as ``func start`` would:
it loads ``local.settings.json`` ``Values`` into the environment without
overriding variables already set, listens on ``Host.LocalHttpPort`` (default
7071), answers CORS as ``Host.CORS`` and ``Host.CORSCredentials`` say, and
reads ``host.json`` as the host reads it (an app setting
``AzureFunctionsJobHost__path__to__key`` overrides ``path.to.key``).

Each behaviour follows the source it names; docs/local-host.md lists them
all, with the tests that check them, and what is not reproduced.

HTTP (Azure/azure-functions-host ``src/WebJobs.Script.WebHost`` and
``src/WebJobs.Script``, Azure/azure-webjobs-sdk-extensions
``src/WebJobs.Extensions.Http``, ASP.NET Core routing):

- ``WebScriptHostHttpRoutesManager.InitializeHttpFunctionRoutes`` and
  ``WebJobsRouteBuilder``: one route a function, ``<routePrefix>/<route>``
  (``route`` defaults to the function's name; ``extensions.http.routePrefix``
  defaults to ``api`` and may be empty), with the trigger's ``methods`` as a
  route constraint: a method not listed matches no route, hence 404;
- ``FunctionMetadataManager.LoadFunctionMetadata``: functions are ordered by
  name (case ignored), and the first route that matches wins, whatever its
  literal segments (host issues #3153 and #9876);
- ASP.NET Core's route templates and inline constraints (``{id:int}``,
  ``{rest?}``, ``{*path}``, ``{name=default}``, ...), see :class:`RouteTemplate`;
- ``FunctionInvocationMiddleware.PopulateRouteData`` and
  ``GrpcMessageConversionExtensions.ToRpcHttp``: an optional parameter with no
  value is left out of ``route_params``; headers reach the worker with
  lower-cased names and repeated ones joined with ``,``; query parameters
  likewise, those with an empty value dropped; the body only when
  ``Content-Length`` is above 0 (a chunked body never reaches an
  out-of-process worker: host issue #7930);
- ``ScriptHost.ValidateFunction``: a route in the reserved ``admin``/``runtime``
  space, or the same route as an earlier function with a method in common, puts
  the function in error;
- ``HostListenerFactory.IsDisabled`` (Azure/azure-webjobs-sdk) and
  ``FunctionInvocationMiddleware``: ``AzureWebJobs.<name>.Disabled`` (or
  ``AzureWebJobs_<name>_Disabled``) set to ``true`` or ``1`` disables a function:
  its route answers 404, its listener does not start;
- ``HttpRequestBodySizeMiddleware`` and ``Program.cs``: a body longer than
  ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` bytes (default 104857600) is refused
  before the function runs; the host answers it 500 (host issue #10519), not
  413, and closes the connection;
- ``ExceptionMiddleware``: a function that fails is a 500 with no body.

Folders with a ``queueTrigger`` binding run as :mod:`tools.devhost.queue_trigger`
says, those with a ``timerTrigger`` as :mod:`tools.devhost.timer_trigger` says, from
when the server starts serving until it shuts down. Functions are loaded and
called as the Python worker does it (:mod:`tools.devhost.worker`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from tools.children import preexec
from tools.devhost.local_settings import apply_local_settings
from tools.devhost.queue_trigger import (
    FunctionIndexingError,
    QueueFunction,
    QueueHost,
    QueuesOptions,
    QueueTrigger,
    app_setting,
)
from tools.devhost.timer_trigger import TimerFunction, TimerHost, TimerTrigger
from tools.devhost.worker import (
    InvocationContext,
    LoadedFunction,
    WorkerUnavailable,
    encode_http_response,
    failed_function,
    load_function,
    worker_description,
)

__all__ = ["InvocationContext"]  # imported from here by tests that build contexts

logger = logging.getLogger("devhost")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: ``ScriptConstants.DefaultMaxRequestBodySize``, which ``Program.cs`` gives Kestrel.
MAX_REQUEST_BYTES = 104857600
#: ``EnvironmentSettingNames.FunctionsRequestBodySizeLimit``.
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
#: The prefix of app settings that override ``host.json`` (``AzureFunctionsJobHost__a__b``).
HOST_JSON_OVERRIDE_PREFIX = "AzureFunctionsJobHost"
#: How long shutdown waits for queue- and timer-triggered invocations in flight.
SHUTDOWN_TIMEOUT = 30.0
#: ``Utility.IsValidFunctionName``.
_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$", re.IGNORECASE)
#: The message of ASP.NET Core's ``CorsPolicyBuilder.Build`` for ``*`` with credentials.
INSECURE_CORS = (
    "The CORS protocol does not allow specifying a wildcard (any) origin and credentials at the same "
    "time. Configure the CORS policy by listing individual origins if credentials needs to be supported."
)


# --------------------------------------------------------------------------------------------------
# Settings


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


@dataclass(frozen=True)
class CorsPolicy:
    """``app.UseCors(b => b.WithOrigins(origins).AllowAnyHeader().AllowAnyMethod()[.AllowCredentials()])``.

    As ASP.NET Core's ``CorsPolicyBuilder``, ``CorsService`` and ``CorsMiddleware``
    (dotnet/aspnetcore ``src/Middleware/CORS``) apply it: origins are lower-cased
    and compared exactly; ``*`` alone allows any origin (and may not go with
    credentials); a preflight (``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method``) is answered 204 before routing, echoing
    the requested method and headers when the origin is allowed; other responses
    get ``Access-Control-Allow-Origin`` (``*`` or the origin) and
    ``Access-Control-Allow-Credentials``; ``Vary: Origin`` when more than one
    origin is listed. An origin not allowed gets no CORS header at all.
    """

    origins: tuple[str, ...]
    credentials: bool = False
    normalized: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalized", tuple(origin.lower() for origin in self.origins))
        if self.any_origin and self.credentials:
            raise ValueError(INSECURE_CORS)

    @property
    def any_origin(self) -> bool:
        return self.normalized == ("*",)

    def _allowed(self, origin: str) -> dict[str, str]:
        if not origin or not (self.any_origin or origin in self.normalized):
            return {}
        headers = {"Access-Control-Allow-Origin": "*" if self.any_origin else origin}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def _vary(self, headers: dict[str, str]) -> dict[str, str]:
        if headers and (self.credentials if self.any_origin else len(self.normalized) > 1):
            headers["Vary"] = "Origin"
        return headers

    def preflight(self, origin: str, method: str, requested_headers: Sequence[str]) -> dict[str, str]:
        """The headers of the 204 answer to a preflight."""
        headers = self._allowed(origin)
        if headers:
            names = [n.strip() for value in requested_headers for n in value.split(",") if n.strip()]
            if names:
                headers["Access-Control-Allow-Headers"] = ",".join(names)
            if method:
                headers["Access-Control-Allow-Methods"] = method
        return self._vary(headers)

    def actual(self, origin: str) -> dict[str, str]:
        """The headers added to the response of a request with an ``Origin``."""
        return self._vary(self._allowed(origin))


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


def request_body_limit(environ: Mapping[str, str] | None = None) -> int:
    """``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` in bytes, or the host's default if unset or not a number."""
    environ = os.environ if environ is None else environ
    value = (environ.get(BODY_SIZE_LIMIT_SETTING) or "").strip()
    return int(value) if re.fullmatch(r"\+?[0-9]+", value) else MAX_REQUEST_BYTES


def is_disabled(function_name: str, environ: Mapping[str, str]) -> bool:
    """Whether ``AzureWebJobs.<name>.Disabled`` or ``AzureWebJobs_<name>_Disabled`` disables a function.

    As ``HostListenerFactory.IsDisabled``: set to ``1`` or ``true`` (any case), read from
    the app settings as configuration reads them (names in any case).
    """
    for name in (f"AzureWebJobs.{function_name}.Disabled", f"AzureWebJobs_{function_name}_Disabled"):
        value = app_setting(environ, name)
        if value is not None and value.strip().lower() in ("1", "true"):
            return True
    return False


# --------------------------------------------------------------------------------------------------
# Route templates


class RouteTemplateError(ValueError):
    """A route template ASP.NET Core's template parser or constraint resolver refuses."""


_WHITE = "\t\n\v\f\r "
_INTEGER = re.compile(rf"[{_WHITE}]*[+-]?[0-9]+[{_WHITE}]*")
_DECIMAL = re.compile(
    rf"[{_WHITE}]*(?P<lead>[+-]?)(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)(?P<trail>[+-]?)[{_WHITE}]*"
)
_FLOAT = re.compile(
    rf"[{_WHITE}]*[+-]?(?:(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rf"|infinity|nan|\u221e)[{_WHITE}]*",
    re.IGNORECASE,
)
_GUID = re.compile(
    r"\s*(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
    r"|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\))\s*",
    re.IGNORECASE,
)
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _parse_integer(value: str, bounds: tuple[int, int]) -> int | None:
    """``int.TryParse``/``long.TryParse`` with ``NumberStyles.Integer`` and the invariant culture."""
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value.strip(_WHITE))
    return number if bounds[0] <= number <= bounds[1] else None


def _is_decimal(value: str) -> bool:
    found = _DECIMAL.fullmatch(value)
    if found is None or (found["lead"] and found["trail"]):
        return False
    digits = value.strip(_WHITE).strip("+-").replace(",", "")
    return abs(float(digits or "0")) < 7.9228162514264337593543950335e28


def _is_datetime(value: str) -> bool:
    """Roughly ``DateTime.TryParse`` with the invariant culture: ISO 8601 dates and times, M/d/yyyy."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return True
    for pattern in ("%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%Y/%m/%d"):
        try:
            datetime.strptime(text, pattern)
        except ValueError:
            continue
        return True
    return False


def _is_file(value: str) -> bool:
    """``FileNameRouteConstraint``: the last segment has a dot with something after it."""
    last = value.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return 0 <= dot < len(last) - 1


@dataclass(frozen=True)
class RouteConstraint:
    """An inline constraint (``DefaultInlineConstraintResolver`` and ``RouteOptions.ConstraintMap``)."""

    name: str
    argument: str | None = None

    def __post_init__(self) -> None:
        self.check(None)  # refuse unknown names and bad arguments when the template is read

    def _numbers(self, count: int | tuple[int, ...]) -> list[int]:
        counts = (count,) if isinstance(count, int) else count
        parts = [] if self.argument is None else [p.strip() for p in self.argument.split(",")]
        if len(parts) not in counts or not all(re.fullmatch(r"-?[0-9]+", p) for p in parts):
            raise RouteTemplateError(
                f"The constraint entry '{self.name}' - '{self.name}({self.argument or ''})' "
                "has invalid arguments."
            )
        return [int(p) for p in parts]

    def check(self, value: str | None) -> bool:  # noqa: PLR0911, PLR0912 - one branch a constraint
        """Whether ``value`` satisfies the constraint (``None``: only validate the constraint itself)."""
        name = self.name.lower()
        simple = ("int", "long", "bool", "guid", "alpha", "datetime", "decimal", "double", "float")
        if name in simple and self.argument is not None:
            raise RouteTemplateError(f"The constraint '{self.name}' takes no arguments.")
        if name == "int":
            return value is None or _parse_integer(value, _INT32) is not None
        if name == "long":
            return value is None or _parse_integer(value, _INT64) is not None
        if name == "bool":
            return value is None or value.strip(_WHITE + "\0").lower() in ("true", "false")
        if name == "guid":
            return value is None or _GUID.fullmatch(value) is not None
        if name == "alpha":
            return value is None or re.fullmatch(r"[a-z]*", value, re.IGNORECASE) is not None
        if name == "datetime":
            return value is None or _is_datetime(value)
        if name == "decimal":
            return value is None or _is_decimal(value)
        if name in ("double", "float"):
            return value is None or _FLOAT.fullmatch(value) is not None
        if name in ("minlength", "maxlength"):
            (limit,) = self._numbers(1)
            if value is None:
                return True
            return len(value) >= limit if name == "minlength" else len(value) <= limit
        if name == "length":
            bounds = self._numbers((1, 2))
            low, high = (bounds[0], bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
            return value is None or low <= len(value) <= high
        if name in ("min", "max", "range"):
            bounds = self._numbers(2 if name == "range" else 1)
            if value is None:
                return True
            number = _parse_integer(value, _INT64)
            if number is None:
                return False
            if name == "min":
                return number >= bounds[0]
            if name == "max":
                return number <= bounds[0]
            return bounds[0] <= number <= bounds[1]
        if name == "regex":
            try:
                pattern = re.compile(self.argument or "", re.IGNORECASE)
            except re.error as error:
                raise RouteTemplateError(
                    f"The constraint regex({self.argument}) is not valid: {error}"
                ) from error
            return value is None or pattern.search(value) is not None
        if name == "required":
            return value is None or value != ""
        if name in ("file", "nonfile"):
            return value is None or _is_file(value) == (name == "file")
        raise RouteTemplateError(
            f"The constraint reference '{self.name}' could not be resolved to a type. Register the "
            "constraint type with 'Microsoft.AspNetCore.Routing.RouteOptions.ConstraintMap'."
        )


@dataclass(frozen=True)
class RouteParameter:
    """``{name}``, ``{name?}``, ``{name=default}``, ``{*name}``, with constraints after ``:``."""

    name: str
    constraints: tuple[RouteConstraint, ...] = ()
    optional: bool = False
    catch_all: bool = False
    default: str | None = None

    def accepts(self, value: str) -> bool:
        return all(constraint.check(value) for constraint in self.constraints)


def _split_constraints(text: str) -> list[str]:
    """Split ``int:min(1):regex(^a:b$)`` at the colons outside a constraint's parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _parse_parameter(text: str) -> RouteParameter:
    """One parameter, the text between its braces (``RouteParameterParser``)."""
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    default: str | None = None
    depth = 0
    for index, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "=" and depth <= 0:
            body, default = body[:index], body[index + 1 :]
            break
    optional = body.endswith("?")
    if optional:
        body = body[:-1]
    name, _, rest = body.partition(":")
    if not re.fullmatch(r"[^{}/\\?*=:]+", name or "/"):
        raise RouteTemplateError(f"The route parameter name '{name}' is invalid.")
    if optional and default is not None:
        raise RouteTemplateError("An optional parameter cannot have default value.")
    if catch_all and optional:
        raise RouteTemplateError("A catch-all parameter cannot be marked optional.")
    constraints: list[RouteConstraint] = []
    for part in _split_constraints(rest) if rest else []:
        if "(" in part and part.endswith(")"):
            constraint_name, argument = part.split("(", 1)
            constraints.append(RouteConstraint(constraint_name, argument[:-1]))
        else:
            constraints.append(RouteConstraint(part))
    return RouteParameter(name, tuple(constraints), optional, catch_all, default)


#: A segment is literal text and parameters, in order.
Segment = tuple[str | RouteParameter, ...]


def _parse_segment(text: str) -> Segment:
    parts: list[str | RouteParameter] = []
    literal = ""
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith("{{", index) or text.startswith("}}", index):
            literal += char
            index += 2
            continue
        if char == "}":
            raise RouteTemplateError("There is an incomplete parameter in the route template.")
        if char == "{":
            end = index + 1
            while end < len(text) and not (text[end] == "}" and not text.startswith("}}", end)):
                end += 2 if text.startswith("}}", end) else 1
            if end >= len(text):
                raise RouteTemplateError("There is an incomplete parameter in the route template.")
            if literal:
                parts.append(literal)
                literal = ""
            parameter_text = text[index + 1 : end].replace("}}", "}").replace("{{", "{")
            parts.append(_parse_parameter(parameter_text))
            index = end + 1
            continue
        if char == "?":
            raise RouteTemplateError(
                f"The literal section '{text}' is invalid. Literal sections cannot contain the '?' character."
            )
        literal += char
        index += 1
    if literal:
        parts.append(literal)
    return tuple(parts)


@dataclass(frozen=True)
class RouteMatch:
    """The route values of a match (a ``re.Match``-like ``groupdict``)."""

    values: dict[str, str]

    def groupdict(self) -> dict[str, str]:
        return dict(self.values)


def _decode_segment(segment: str) -> str:
    """Kestrel's path decoding: percent-escapes decoded, except ``%2F`` which stays as is."""
    return "%2F".join(unquote(piece) for piece in re.split("%2[fF]", segment))


class RouteTemplate:
    """An ASP.NET Core route template, matched as the legacy ``Route`` (``TemplateMatcher``) matches.

    Literal segments compare case-insensitively; a parameter takes one whole,
    non-empty segment (``{*path}`` and ``{**path}`` the rest of the path, if any,
    and must come last); a segment may mix literals and parameters
    (``{name}.{ext}``). Once the path runs out, the remaining segments must each
    be an optional parameter (left out of the values), one with a default (the
    default is its value) or a catch-all. One trailing slash is ignored. Every
    constraint of a parameter must accept its value (``OptionalRouteConstraint``:
    none is checked for an optional parameter without value).
    """

    def __init__(self, template: str) -> None:
        self.template = template
        text = template[2:] if template.startswith("~/") else template.lstrip("/")
        segments = [] if text == "" else text.split("/")
        if any(segment == "" for segment in segments):
            raise RouteTemplateError(
                "The route template separator character '/' cannot appear consecutively. It must be "
                "separated by either a parameter or a literal value."
            )
        self.segments = [_parse_segment(segment) for segment in segments]
        names: set[str] = set()
        for index, segment in enumerate(self.segments):
            for part in segment:
                if not isinstance(part, RouteParameter):
                    continue
                if part.name.lower() in names:
                    raise RouteTemplateError(
                        f"The route parameter name '{part.name}' appears more than one time in the route "
                        "template."
                    )
                names.add(part.name.lower())
                if part.catch_all and (index != len(self.segments) - 1 or len(segment) != 1):
                    raise RouteTemplateError(
                        "A catch-all parameter can only appear as the last segment of the route template."
                    )
                if part.optional and len(segment) != 1 and part is not segment[-1]:
                    raise RouteTemplateError("An optional parameter must be at the end of the segment.")
        self._complex = [
            self._segment_regex(segment) if len(segment) > 1 else None for segment in self.segments
        ]

    @staticmethod
    def _segment_regex(segment: Segment) -> re.Pattern[str]:
        pattern = ""
        for number, part in enumerate(segment):
            if isinstance(part, RouteParameter):
                pattern += f"(?P<p{number}>.+)" + ("?" if part.optional else "")
            else:
                pattern += re.escape(part)
        return re.compile(pattern, re.IGNORECASE | re.DOTALL)

    def fullmatch(self, path: str) -> RouteMatch | None:  # noqa: PLR0911, PLR0912 - TemplateMatcher's cases
        """Match a request path (as sent, percent-encoded); :returns: the route values, or ``None``."""
        text = path[1:] if path.startswith("/") else path
        if text.endswith("/"):
            text = text[:-1]
        raw = [] if text == "" else text.split("/")
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            first = segment[0]
            if isinstance(first, RouteParameter) and first.catch_all:
                rest = "/".join(_decode_segment(s) for s in raw[index:])
                if rest:
                    if not first.accepts(rest):
                        return None
                    values[first.name] = rest
                elif first.default is not None:
                    values[first.name] = first.default
                return RouteMatch(values)
            if index >= len(raw):
                if len(segment) != 1 or not isinstance(first, RouteParameter):
                    return None
                if first.default is not None:
                    if not first.accepts(first.default):
                        return None
                    values[first.name] = first.default
                elif not first.optional:
                    return None
                continue
            value = _decode_segment(raw[index])
            if not self._match_segment(index, segment, value, values):
                return None
        if len(raw) > len(self.segments):
            return None
        return RouteMatch(values)

    def _match_segment(self, index: int, segment: Segment, value: str, values: dict[str, str]) -> bool:
        if len(segment) == 1:
            part = segment[0]
            if isinstance(part, str):
                return part.lower() == value.lower()
            if not value or not part.accepts(value):
                return False
            values[part.name] = value
            return True
        regex = self._complex[index]
        found = regex.fullmatch(value) if regex is not None else None
        if found is None:
            return False
        for number, part in enumerate(segment):
            if isinstance(part, RouteParameter):
                captured = found[f"p{number}"]
                if captured is None:
                    continue
                if not part.accepts(captured):
                    return False
                values[part.name] = captured
        return True

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"


def route_pattern(prefix: str, template: str) -> RouteTemplate:
    """The route the host maps: ``<prefix>/<template>`` (just the template when the prefix is empty)."""
    return RouteTemplate(f"{prefix}/{template}" if prefix else template)


# --------------------------------------------------------------------------------------------------
# Functions


@dataclass(frozen=True)
class HttpFunction:
    """One HTTP-triggered function folder, loaded, with its route."""

    name: str
    folder: Path
    route: RouteTemplate
    methods: frozenset[str] | None
    function: LoadedFunction
    disabled: bool = False
    #: The name of its ``http`` output binding: ``$return``, a parameter, or ``None`` (no response).
    http_output: str | None = None

    def accepts(self, method: str) -> bool:
        """``HttpMethodRouteConstraint``: no ``methods`` is every method; names compare in any case."""
        return self.methods is None or method.upper() in self.methods

    def match(self, path: str) -> dict[str, str] | None:
        found = self.route.fullmatch(path)
        return None if found is None else found.groupdict()


def _function_folders(root: Path, trigger_type: str) -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """Each function folder under ``root`` with a ``trigger_type`` trigger, its config and binding.

    In the host's order (``FunctionMetadataManager``: by name, case ignored). A
    folder whose name the host refuses (``Utility.IsValidFunctionName``) or
    whose ``function.json`` is not JSON is logged as in error and skipped.
    """
    found = []
    for config_path in sorted(root.glob("*/function.json"), key=lambda p: p.parent.name.lower()):
        name = config_path.parent.name
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError as error:
            logger.error("The '%s' function is in error: %s", name, error)
            continue
        bindings = config.get("bindings") or []
        trigger = next((b for b in bindings if str(b.get("type", "")).lower() == trigger_type.lower()), None)
        if trigger is None:
            continue
        if not _FUNCTION_NAME.fullmatch(name):
            logger.error("The '%s' function is in error: '%s' is not a valid function name.", name, name)
            continue
        found.append((config_path.parent, config, trigger))
    return found


def _load(folder: Path, config: Mapping[str, Any], trigger: Mapping[str, Any]) -> LoadedFunction:
    """Load a function as the worker does.

    A function the worker cannot load (an import error, a signature that does not
    match ``function.json``) stays in the host, as it does there: its load error is
    logged, and each invocation of it fails with that error.
    """
    trigger_type = str(trigger.get("type"))
    try:
        return load_function(folder, config, trigger_type)
    except WorkerUnavailable:
        raise  # the host cannot start without the worker it was asked for
    except Exception as error:
        logger.exception("Worker failed to load function: '%s'", folder.name)
        return failed_function(folder, config, trigger_type, error)


def _routes_conflict(
    route: str, methods: frozenset[str] | None, other: str, others: frozenset[str] | None
) -> bool:
    """``ScriptHost.HttpRoutesConflict``: the same route (case ignored) and a method in common."""
    if route.strip("/").lower() != other.strip("/").lower():
        return False
    return methods is None or others is None or bool(methods & others)


def discover_functions(root: Path, environ: Mapping[str, str] | None = None) -> list[HttpFunction]:
    """Load every HTTP-triggered function folder under ``root``, in the host's route order.

    :raises RouteTemplateError: a route template the host could not map (its start fails).
    """
    environ = os.environ if environ is None else environ
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    prefix = route_prefix(root, environ)
    functions: list[HttpFunction] = []
    routes: dict[str, tuple[str, frozenset[str] | None]] = {}
    for folder, config, trigger in _function_folders(root, "httpTrigger"):
        name = folder.name
        route = str(trigger.get("route") or "").strip() or name
        listed = trigger.get("methods")
        methods = frozenset(str(m).upper() for m in listed) if listed else None
        if route.strip("/").lower().startswith(("admin", "runtime")):
            logger.error(
                "The '%s' function is in error: %s",
                name,
                "The specified route conflicts with one or more built in routes.",
            )
            continue
        conflict = next((o for o, (r, m) in routes.items() if _routes_conflict(route, methods, r, m)), None)
        if conflict is not None:
            logger.error(
                "The '%s' function is in error: The route specified conflicts with the route defined by "
                "function '%s'.",
                name,
                conflict,
            )
            continue
        try:
            template = route_pattern(prefix, route)
        except RouteTemplateError as error:
            raise RouteTemplateError(
                f"The route '{route}' of function '{name}' is invalid: {error}"
            ) from error
        loaded = _load(folder, config, trigger)
        routes[name] = (route, methods)
        output = next(
            (
                str(b.get("name"))
                for b in config.get("bindings", [])
                if str(b.get("type", "")).lower() == "http" and str(b.get("direction", "")).lower() == "out"
            ),
            None,
        )
        function = HttpFunction(name, folder, template, methods, loaded, is_disabled(name, environ), output)
        functions.append(function)
    return functions


def discover_queue_functions(root: Path, environ: Mapping[str, str] | None = None) -> list[QueueFunction]:
    """Load every queue-triggered function folder under ``root`` whose binding resolves.

    As the host indexes functions: a folder whose ``queueName`` names an
    undefined ``%setting%``, or whose ``connection`` resolves to nothing, is
    logged as in error and neither imported nor run; the others still are. A
    disabled function is loaded (the host sends the worker every function) but
    not listened for.
    """
    environ = os.environ if environ is None else environ
    return [
        QueueFunction(trigger=trigger, invoke=invoke)
        for trigger, invoke in _listened(root, "queueTrigger", QueueTrigger.from_binding, environ)
    ]


def discover_timer_functions(root: Path, environ: Mapping[str, str] | None = None) -> list[TimerFunction]:
    """Load every timer-triggered function folder under ``root`` whose schedule resolves.

    As for queues: an undefined ``%setting%`` or a schedule neither NCRONTAB nor a
    TimeSpan puts the function in error (logged; not imported, not run); a
    disabled function is loaded but its timer does not start.
    """
    environ = os.environ if environ is None else environ
    return [
        TimerFunction(trigger=trigger, invoke=invoke)
        for trigger, invoke in _listened(root, "timerTrigger", TimerTrigger.from_binding, environ)
    ]


_Trigger = TypeVar("_Trigger")


def _listened(
    root: Path,
    trigger_type: str,
    from_binding: Callable[[str, Mapping[str, Any], Mapping[str, str]], _Trigger],
    environ: Mapping[str, str],
) -> list[tuple[_Trigger, Callable[[Any, str], Any]]]:
    """The triggers of ``trigger_type`` to listen for, each with its invoker, as the host indexes them.

    A binding that does not resolve puts its function in error (logged; not
    imported); a disabled function is loaded but not listened for.
    """
    found = []
    for folder, config, binding in _function_folders(root, trigger_type):
        try:
            trigger = from_binding(folder.name, binding, environ)
        except FunctionIndexingError as error:
            logger.error("The '%s' function is in error: %s", folder.name, error)
            continue
        loaded = _load(folder, config, binding)
        if is_disabled(folder.name, environ):
            logger.info("Function '%s' is disabled", folder.name)
            continue
        found.append((trigger, _invoker(loaded)))
    return found


def _invoker(loaded: LoadedFunction) -> Callable[[Any, str], Any]:
    def invoke(value: Any, invocation_id: str) -> Any:
        return loaded.invoke(value, invocation_id).return_value

    return invoke


# --------------------------------------------------------------------------------------------------
# Serving


class BodyTooLarge(Exception):
    """``BadHttpRequestException`` (``RequestBodyTooLarge``), raised when the body is read."""


def _joined(pairs: Sequence[tuple[str, str]], *, lower: bool) -> dict[str, str]:
    """Values of the same name (any case) joined with ``,``, as ``StringValues.ToString()`` joins them."""
    grouped: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        names.setdefault(key, key if lower else name)
        grouped.setdefault(key, []).append(value)
    return {names[key]: ",".join(values) for key, values in grouped.items()}


def query_parameters(query: str) -> dict[str, str]:
    """``request.Query`` as the host sends it to the worker: repeated keys joined, empty values dropped."""
    joined = _joined(parse_qsl(query, keep_blank_values=True), lower=False)
    return {name: value for name, value in joined.items() if value}


class FunctionsRequestHandler(BaseHTTPRequestHandler):
    """Routes each request to a function, as the Functions host would."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, a keep-alive
    # client's delayed ACK would hold the second back for ~40 ms.
    disable_nagle_algorithm = True
    server: DevHost

    def do_request(self) -> None:
        started = time.perf_counter()
        self.invocation_id = "-"
        self.cors_headers: dict[str, str] = {}
        status = self._serve()
        elapsed_ms = (time.perf_counter() - started) * 1000
        path = urlsplit(self.path).path
        logger.info(
            "%s %s -> %s (%.1f ms) invocation_id=%s",
            self.command,
            path,
            status,
            elapsed_ms,
            self.invocation_id,
        )

    def __getattr__(self, name: str) -> Any:
        # The base class dispatches to do_<METHOD> and answers 501 where there is none; like the
        # Functions host, route every method, so that one no function takes gets 404.
        if name.startswith("do_"):
            return self.do_request
        raise AttributeError(name)

    def _serve(self) -> int:
        url = urlsplit(self.path)
        cors = self.server.cors
        origin = self.headers.get("Origin")
        if cors is not None and origin is not None:
            requested_method = self.headers.get("Access-Control-Request-Method")
            if self.command.upper() == "OPTIONS" and requested_method is not None:
                # CorsMiddleware answers every preflight itself, before routing.
                self._discard_body()
                requested = self.headers.get_all("Access-Control-Request-Headers") or []
                return self._send(204, cors.preflight(origin, requested_method, requested), b"")
            self.cors_headers = cors.actual(origin)
        found = self.server.route(url.path, self.command)
        if found is None:
            self._discard_body()
            return self._send(404, {}, b"")
        function, route_params = found
        if function.disabled:
            self._discard_body()
            return self._send(404, {}, b"")
        try:
            body = self._read_body()
        except BodyTooLarge:
            logger.error(
                "Executed 'Functions.%s' (Failed): Exception binding parameter '%s': Request body too large. "
                "The max request body size is %d bytes.",
                function.name,
                function.function.trigger.name,
                self.server.body_limit,
            )
            self.close_connection = True
            return self._send(500, {"Connection": "close"}, b"")
        except ValueError:
            self.close_connection = True
            return self._send(400, {"Connection": "close"}, b"")
        request = func.HttpRequest(
            method=self.command,
            url=f"http://{self.headers.get('Host', 'localhost')}{self.path}",
            headers=self._forwarded_headers(),
            params=query_parameters(url.query),
            route_params=route_params,
            body=body,
        )
        return self._invoke(function, request)

    def _forwarded_headers(self) -> dict[str, str]:
        """The request's headers as the host passes them on (``ToRpcHttp``).

        Names lower-cased, repeated headers joined with ``,``. Like Azure's front
        ends, the address of the connection's peer (``IP:port``) is appended to
        ``X-Forwarded-For``, after whatever the client sent.
        """
        pairs = [(n, v) for n, v in self.headers.items() if n.lower() != "x-forwarded-for"]
        headers = _joined(pairs, lower=True)
        host, port = self.client_address[:2]
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers["x-forwarded-for"] = ", ".join([*self.headers.get_all("X-Forwarded-For", []), peer])
        return headers

    def _invoke(self, function: HttpFunction, request: func.HttpRequest) -> int:
        invocation_id = str(uuid.uuid4())
        self.invocation_id = invocation_id
        try:
            invocation = function.function.invoke(request, invocation_id)
            if function.http_output is None:
                response = None
            elif function.http_output == "$return":
                response = encode_http_response(invocation.return_value)
            elif function.http_output in invocation.outputs:
                response = encode_http_response(invocation.outputs[function.http_output])
            else:
                response = None  # nothing set: the host's OkResult
        except Exception:
            logger.exception("Executed 'Functions.%s' (Failed, Id=%s)", function.name, invocation_id)
            return self._send(500, {}, b"")
        if response is None:
            return self._send(200, {}, b"")
        return self._send(response.status_code, response.headers, response.body, cookies=response.cookies)

    def _content_length(self) -> int | None:
        """The declared body length; ``None`` for a chunked body. :raises ValueError: a bad header."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        value = self.headers.get("Content-Length")
        if value is None:
            return 0
        if not value.strip().isdigit():
            raise ValueError("bad Content-Length")
        return int(value)

    def _read_body(self) -> bytes:
        """The body the function gets: only a ``Content-Length`` one (``request.ContentLength > 0``).

        :raises BodyTooLarge: longer than the limit; it is left unread.
        """
        length = self._content_length()
        if length is None:
            self._read_chunked()
            logger.warning("A chunked request body is not passed to the function, as by the Functions host")
            return b""
        if length > self.server.body_limit:
            raise BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _discard_body(self) -> None:
        """Consume a body no function reads; close the connection rather than read one too large."""
        try:
            length = self._content_length()
            if length is None:
                self._read_chunked()
            elif length > self.server.body_limit:
                self.close_connection = True
            elif length > 0:
                self.rfile.read(length)
        except (ValueError, BodyTooLarge):
            self.close_connection = True

    def _read_chunked(self) -> None:
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            total += size
            if total > self.server.body_limit:
                raise BodyTooLarge
            self.rfile.read(size)
            self.rfile.readline()

    def _send(
        self,
        status: int,
        headers: Mapping[str, str] | Sequence[tuple[str, str]],
        body: bytes,
        *,
        cookies: Sequence[str] = (),
    ) -> int:
        self.send_response(status)
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        for name, value in [*pairs, *self.cors_headers.items()]:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silence the default access log; :meth:`do_request` logs instead."""


class DevHost(ThreadingHTTPServer):
    """The HTTP server: one thread a request, like the Python worker's thread pool.

    Its queue and timer listeners (if any) run while it serves: :meth:`serve_forever`
    starts them, :meth:`server_close` stops them.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default of 5 resets bursts of concurrent clients

    def __init__(
        self,
        address: tuple[str, int],
        functions: list[HttpFunction],
        config: HostConfig,
        queues: QueueHost | None = None,
        timers: TimerHost | None = None,
        *,
        body_limit: int = MAX_REQUEST_BYTES,
    ) -> None:
        # Before binding: a failed bind calls server_close.
        self.queues = queues or QueueHost([], QueuesOptions())
        self.timers = timers or TimerHost([])
        self._listeners_started = False
        self.cors = config.cors  # ValueError for '*' with credentials, as the policy builder throws
        super().__init__(address, FunctionsRequestHandler)
        self.functions = functions
        self.config = config
        self.body_limit = body_limit

    def route(self, path: str, method: str) -> tuple[HttpFunction, dict[str, str]] | None:
        """The first function, in the host's order, whose route and methods match."""
        for function in self.functions:
            if not function.accepts(method):
                continue
            values = function.match(path)
            if values is not None:
                return function, values
        return None

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Start the queue and timer listeners, then serve HTTP until :meth:`shutdown`."""
        if not self._listeners_started:
            self._listeners_started = True
            self.queues.start()
            self.timers.start()
        super().serve_forever(poll_interval)

    def server_close(self) -> None:
        """Stop the listeners (letting invocations in flight finish), then close the socket."""
        if self._listeners_started:
            self._listeners_started = False
            deadline = time.monotonic() + SHUTDOWN_TIMEOUT
            self.timers.stop_timers()
            self.queues.stop(SHUTDOWN_TIMEOUT)
            self.timers.stop(max(0.0, deadline - time.monotonic()))
        super().server_close()


def build_host(root: Path, host: str, port: int | None, settings: Path | None = None) -> DevHost:
    """Load settings and functions from ``root`` and bind the server (port 0 picks a free one)."""
    config = load_local_settings(settings or root / "local.settings.json")
    functions = discover_functions(root)
    queue_functions = discover_queue_functions(root)
    timer_functions = discover_timer_functions(root)
    options = QueuesOptions()
    if queue_functions:
        section = HostJson.load(root).section("extensions", "queues")
        options = QueuesOptions.from_settings(section, os.environ)
    queues = QueueHost(queue_functions, options)
    timers = TimerHost(timer_functions, root=root, environ=os.environ)
    return DevHost(
        (host, config.port if port is None else port),
        functions,
        config,
        queues,
        timers,
        body_limit=request_body_limit(),
    )


#: Environment variables that configure this service (or the platform it reads them from).
APP_SETTING_PREFIXES = (
    "AUTH_",
    "ACCOUNTS_",
    "AzureWebJobs",  # AzureWebJobsStorage, AzureWebJobs.<name>.Disabled
    "WEBSITE_",
    "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",
    HOST_JSON_OVERRIDE_PREFIX,
)


def app_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any of the service's settings, plus ``settings``.

    For a child host whose configuration must not pick up what happens to be set in the shell.
    """
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(APP_SETTING_PREFIXES)
    }
    return inherited | dict(settings)


def spawn(
    port: int,
    settings: Path,
    environment: Mapping[str, str],
    *,
    root: Path | None = None,
    cpus: set[int] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start ``python -m tools.devhost`` as a child process and wait until it listens.

    ``root`` is the function app's folder (default: this project). ``cpus``, when
    given, confines the host to those CPUs: the child sets its affinity before
    ``exec``, so every thread it starts (request threads, listeners) inherits it.
    """
    command = [sys.executable, "-m", "tools.devhost", "--port", str(port), "--settings", str(settings)]
    if root is not None:
        command += ["--root", str(root)]
    if cpus is not None and not cpus:
        raise ValueError("cpus must name at least one CPU")
    if "preexec_fn" in popen:
        raise TypeError("spawn sets preexec_fn itself (pass cpus)")
    # Default signal dispositions whatever this process inherited: SIGINT and SIGTERM stop the host.
    popen["preexec_fn"] = preexec(cpus=cpus)
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=dict(environment), **popen)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local host exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError("the local host did not start listening within 30 s")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Like Ctrl-C: unwind serve_forever, so that shutdown drains the queue and timer listeners.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.devhost", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default Host.LocalHttpPort or 7071)")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="the function app's folder")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings file (default ROOT/local.settings.json)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        server = build_host(args.root.resolve(), args.host, args.port, args.settings)
    except (RouteTemplateError, ValueError, WorkerUnavailable) as error:
        logger.error("The host cannot start: %s", error)
        raise SystemExit(1) from error
    bound_host, bound_port = server.server_address[:2]
    print(f"Worker: {worker_description()}", flush=True)
    for function in server.functions:
        methods = ",".join(sorted(function.methods)) if function.methods else "all"
        disabled = " (disabled)" if function.disabled else ""
        logger.info("%s: [%s] %s%s", function.name, methods, function.route.template, disabled)
    for queue_function in server.queues.functions:
        trigger = queue_function.trigger
        logger.info(
            "%s: queueTrigger %s (connection %s)",
            trigger.function_name,
            trigger.queue_name,
            trigger.connection.setting,
        )
    if server.queues.functions:
        logger.info("Queue options: %s", server.queues.options)
    for timer_function in server.timers.functions:
        trigger_info = timer_function.trigger
        logger.info(
            "%s: timerTrigger %s (runOnStartup %s, useMonitor %s)",
            timer_function.name,
            trigger_info.schedule.describe(),
            trigger_info.run_on_startup,
            trigger_info.use_monitor,
        )
    print(f"Serving {len(server.functions)} functions on http://{bound_host!s}:{bound_port}", flush=True)
    if server.queues.functions:
        print(f"Listening to queues for {len(server.queues.functions)} functions", flush=True)
    if server.timers.functions:
        print(f"Running timers for {len(server.timers.functions)} functions", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
