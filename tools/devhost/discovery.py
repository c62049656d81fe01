"""Finding and loading the app's function folders, as the Functions host indexes them.

(Azure/azure-functions-host ``src/WebJobs.Script.WebHost`` and ``src/WebJobs.Script``.)

- ``WebScriptHostHttpRoutesManager.InitializeHttpFunctionRoutes`` and
  ``WebJobsRouteBuilder``: one route a function, ``<routePrefix>/<route>``
  (``route`` defaults to the function's name; ``extensions.http.routePrefix``
  defaults to ``api`` and may be empty), with the trigger's ``methods`` as a
  route constraint: a method not listed matches no route, hence 404;
- ``FunctionMetadataManager.LoadFunctionMetadata``: functions are ordered by
  name (case ignored), and the first route that matches wins, whatever its
  literal segments (host issues #3153 and #9876);
- ``ScriptHost.ValidateFunction``: a route in the reserved ``admin``/``runtime``
  space, or the same route as an earlier function with a method in common, puts
  the function in error;
- ``HostListenerFactory.IsDisabled`` (Azure/azure-webjobs-sdk) and
  ``FunctionInvocationMiddleware``: a disabled function (:func:`is_disabled`) is
  loaded, but its route answers 404 and its listener does not start;
- a queue or timer binding that does not resolve puts its function in error
  (logged; not imported, not run).

Functions are loaded as the Python worker loads them (:mod:`tools.devhost.worker`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tools.devhost.app_settings import FunctionIndexingError, is_disabled
from tools.devhost.functions import HttpFunction, ListenedFunction, Trigger
from tools.devhost.host_json import route_prefix
from tools.devhost.queue_trigger import QueueFunction, QueueTrigger
from tools.devhost.route_constraints import RouteTemplateError
from tools.devhost.routes import route_pattern
from tools.devhost.timer_trigger import TimerFunction, TimerTrigger
from tools.devhost.worker import LoadedFunction, WorkerUnavailable, failed_function, load_function

logger = logging.getLogger("devhost")


#: ``Utility.IsValidFunctionName``.
_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$", re.IGNORECASE)


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
    return _listened(root, "queueTrigger", QueueTrigger.from_binding, environ)


def discover_timer_functions(root: Path, environ: Mapping[str, str] | None = None) -> list[TimerFunction]:
    """Load every timer-triggered function folder under ``root`` whose schedule resolves.

    As for queues: an undefined ``%setting%`` or a schedule neither NCRONTAB nor a
    TimeSpan puts the function in error (logged; not imported, not run); a
    disabled function is loaded but its timer does not start.
    """
    environ = os.environ if environ is None else environ
    return _listened(root, "timerTrigger", TimerTrigger.from_binding, environ)


_Trigger = TypeVar("_Trigger", bound=Trigger)


def _listened(
    root: Path,
    trigger_type: str,
    from_binding: Callable[[str, Mapping[str, Any], Mapping[str, str]], _Trigger],
    environ: Mapping[str, str],
) -> list[ListenedFunction[_Trigger, Any]]:
    """The functions with a ``trigger_type`` trigger to listen for, as the host indexes them.

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
        found.append(ListenedFunction(trigger=trigger, invoke=_invoker(loaded)))
    return found


def _invoker(loaded: LoadedFunction) -> Callable[[Any, str], Any]:
    def invoke(value: Any, invocation_id: str) -> Any:
        return loaded.invoke(value, invocation_id).return_value

    return invoke
