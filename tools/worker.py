"""The language-worker side of the local host: loading a function folder and invoking it.

The Functions host does not run Python itself: it hands each function to the
Python language worker, which imports the folder's script, checks its
signature against ``function.json`` and calls it. This module does that part,
following the worker's source (Azure/azure-functions-python-worker 4.x,
``azure_functions_worker/``; the same code ships for the function.json model
as ``azure-functions-runtime-v1``, ``azure_functions_runtime_v1/``):

- ``loader.py`` ``load_function``: the function app's folders form the namespace
  package ``__app__``; a folder's script is imported as ``__app__.<folder>``
  (``__app__.<folder>.<module>`` for a ``scriptFile`` other than ``__init__.py``),
  and ``entryPoint`` (default ``main``) must be a callable in it;
- ``functions.py`` ``Registry.add_function``: a ``$return`` binding must have the
  ``out`` direction and ``inout`` is refused; the entry point's parameters must
  be exactly the bindings' names (``context`` aside, which gets the invocation
  context); an ``out`` binding's parameter, if annotated, must be
  ``func.Out[...]``, and an ``in`` binding's must not; the messages are the
  worker's (``cannot load the <name> function: ...``);
- ``dispatcher.py`` ``_handle__invocation_request``: each ``out`` parameter gets
  a fresh ``func.Out``; after the call, the values set are the outputs, the
  return value goes to ``$return``, and a function without ``$return`` that
  returns something fails (``function 'x' without a $return binding returned a
  non-None value``); ``async def`` functions are awaited.

Microsoft's ``azure-functions-runtime-v1`` (the worker library for this model)
requires Python 3.13 or newer in every release, and this project supports 3.11
and up; see docs/local-host.md. On 3.13+ with exactly release
:data:`RUNTIME_V1_VERSION` of that package installed, and
``DEVHOST_WORKER=runtime-v1`` set, :func:`load_function` loads through its
``loader.load_function`` and ``functions.Registry`` instead, and calls through
its ``native_invocation`` module; otherwise this module's own loader, held to
the same tests, is used.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import sys
import threading
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

#: The namespace package the worker imports function folders under.
APP_NAMESPACE = "__app__"
DEFAULT_SCRIPT_FILE = "__init__.py"
DEFAULT_ENTRY_POINT = "main"
#: Selects Microsoft's worker library where it can run (Python 3.13+, package installed).
WORKER_SETTING = "DEVHOST_WORKER"
RUNTIME_V1 = "runtime-v1"
#: The exact release of azure-functions-runtime-v1 the optional path was written against.
RUNTIME_V1_VERSION = "1.2.0"


class FunctionLoadError(RuntimeError):
    """The worker's refusal to load a function (``cannot load the <name> function: <why>``)."""

    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")


class InvocationContext(func.Context):
    """What the Python worker passes as ``context``: the invocation id and the function."""

    def __init__(self, function_name: str, function_directory: str, invocation_id: str | None = None) -> None:
        self._invocation_id = invocation_id or str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local()
        self._local.invocation_id = self._invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


@dataclass(frozen=True)
class Binding:
    """One entry of ``function.json`` ``bindings``."""

    name: str
    type: str
    direction: str

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Binding:
        return cls(
            name=str(document.get("name") or ""),
            type=str(document.get("type") or ""),
            direction=str(document.get("direction") or "in").lower(),
        )


@dataclass(frozen=True)
class Invocation:
    """What one call produced: the return value (for ``$return``) and the ``func.Out`` values set."""

    return_value: Any
    outputs: dict[str, Any] = field(default_factory=dict)


class _Out(func.Out[Any]):
    """``azure_functions_worker.bindings.out.Out``: a box the function puts an output in."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass(frozen=True)
class LoadedFunction:
    """A function folder loaded and checked as the Python worker loads it."""

    name: str
    directory: Path
    main: Callable[..., Any]
    trigger: Binding
    outputs: tuple[str, ...]
    has_return: bool
    return_type: str | None
    requires_context: bool
    _native: Any = None

    def invoke(self, trigger_value: Any, invocation_id: str) -> Invocation:
        """Call the function with ``trigger_value`` for its trigger, as the worker does."""
        if self._native is not None:
            native: Invocation = self._native(trigger_value, invocation_id)
            return native
        arguments: dict[str, Any] = {self.trigger.name: trigger_value}
        if self.requires_context:
            arguments["context"] = InvocationContext(self.name, str(self.directory), invocation_id)
        boxes = {name: _Out() for name in self.outputs}
        arguments.update(boxes)
        result = self.main(**arguments)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        if result is not None and not self.has_return:
            raise RuntimeError(f"function {self.name!r} without a $return binding returned a non-None value")
        outputs = {name: box.get() for name, box in boxes.items() if box.get() is not None}
        return Invocation(return_value=result, outputs=outputs)


def _register_app_folder(root: Path) -> None:
    """``loader.install`` and ``register_function_dir``: ``__app__`` spans the app's folder."""
    package = sys.modules.get(APP_NAMESPACE)
    if package is None:
        spec = importlib.machinery.ModuleSpec(APP_NAMESPACE, None, is_package=True)
        spec.submodule_search_locations = []
        package = importlib.util.module_from_spec(spec)
        package.__path__ = []
        sys.modules[APP_NAMESPACE] = package
    if str(root) not in package.__path__:
        package.__path__.append(str(root))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # the worker runs with the app's folder on its path


def _import_entry_point(name: str, folder: Path, script_file: str, entry_point: str) -> Callable[..., Any]:
    """``loader.load_function``: import ``__app__.<folder>[.<module>]`` and take its entry point."""
    _register_app_folder(folder.parent)
    script = folder / script_file
    module_name, extension = os.path.splitext(script.name)
    if extension != ".py":
        raise FunctionLoadError(name, f"invalid Python filename {script_file}")
    parts = [APP_NAMESPACE, *script.relative_to(folder.parent).parts[:-1]]
    if module_name.lower() != "__init__":
        parts.append(module_name)
    module = importlib.import_module(".".join(parts))
    entry = getattr(module, entry_point, None)
    if entry is None or not callable(entry):
        raise FunctionLoadError(name, f"function {entry_point}() is not present in {script.name}")
    loaded: Callable[..., Any] = entry
    return loaded


def _is_out(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    candidate = origin if origin is not None else annotation
    return isinstance(candidate, type) and candidate.__name__ == "Out"


def _check_signature(  # noqa: PLR0912 - one branch a check of the worker's
    name: str, main: Callable[..., Any], bindings: list[Binding]
) -> tuple[tuple[str, ...], bool, str | None, bool]:
    """``Registry.add_function``'s checks; :returns: the out parameters, has_return, its type, context."""
    bound: dict[str, Binding] = {}
    has_return = False
    return_type: str | None = None
    for binding in bindings:
        if binding.direction == "inout":
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        if binding.name == "$return":
            if binding.direction != "out":
                raise FunctionLoadError(name, '"$return" binding must have direction set to "out"')
            has_return, return_type = True, binding.type
        else:
            bound[binding.name] = binding
    parameters = dict(inspect.signature(main).parameters)
    try:
        annotations = typing.get_type_hints(main)
    except Exception:  # noqa: BLE001 - the worker would fail the load; report it the same way
        annotations = dict(getattr(main, "__annotations__", {}))
    requires_context = "context" in parameters and "context" not in bound
    if requires_context:
        parameters.pop("context")
    if set(parameters) - set(bound):
        missing = set(parameters) - set(bound)
        raise FunctionLoadError(
            name, f"the following parameters are declared in Python but not in function.json: {missing!r}"
        )
    if set(bound) - set(parameters):
        missing = set(bound) - set(parameters)
        raise FunctionLoadError(
            name, f"the following parameters are declared in function.json but not in Python: {missing!r}"
        )
    outputs: list[str] = []
    for parameter in parameters:
        binding = bound[parameter]
        annotated = parameter in annotations
        is_out = annotated and _is_out(annotations[parameter])
        if binding.direction == "out":
            if annotated and not is_out:
                raise FunctionLoadError(
                    name,
                    f'binding {parameter} is declared to have the "out" direction, but its annotation '
                    "in Python is not a subclass of azure.functions.Out",
                )
            outputs.append(parameter)
        elif is_out:
            raise FunctionLoadError(
                name,
                f'binding {parameter} is declared to have the "in" direction in function.json, but its '
                "annotation is azure.functions.Out in Python",
            )
    return tuple(outputs), has_return, return_type, requires_context


def use_runtime_v1(environ: Mapping[str, str] | None = None) -> bool:
    """Whether to load through Microsoft's ``azure-functions-runtime-v1`` (see the module's docstring)."""
    environ = os.environ if environ is None else environ
    running = (sys.version_info.major, sys.version_info.minor)
    if (environ.get(WORKER_SETTING) or "").lower() != RUNTIME_V1 or running < (3, 13):
        return False
    try:
        installed = importlib.metadata.version("azure-functions-runtime-v1")
    except importlib.metadata.PackageNotFoundError:
        return False
    if installed != RUNTIME_V1_VERSION:
        logging.getLogger("devhost.worker").warning(
            "azure-functions-runtime-v1 %s is installed, not %s: using the local host's loader",
            installed,
            RUNTIME_V1_VERSION,
        )
        return False
    return True


def load_function(folder: Path, config: Mapping[str, Any], trigger_type: str) -> LoadedFunction:
    """Load ``folder`` (its ``function.json`` is ``config``) as the worker's function load request does.

    :raises FunctionLoadError: what the worker answers for a function it cannot load.
    """
    name = folder.name
    bindings = [Binding.from_json(b) for b in config.get("bindings", [])]
    trigger = next(b for b in bindings if b.type == trigger_type)
    script_file = str(config.get("scriptFile") or DEFAULT_SCRIPT_FILE)
    entry_point = str(config.get("entryPoint") or DEFAULT_ENTRY_POINT)
    if use_runtime_v1():
        return _load_with_runtime_v1(folder, bindings, trigger, script_file, entry_point)
    main = _import_entry_point(name, folder, script_file, entry_point)
    outputs, has_return, return_type, requires_context = _check_signature(name, main, bindings)
    return LoadedFunction(
        name=name,
        directory=folder,
        main=main,
        trigger=trigger,
        outputs=outputs,
        has_return=has_return,
        return_type=return_type,
        requires_context=requires_context,
    )


@dataclass(frozen=True)
class HttpResponseData:
    """An ``http`` output as the worker sends it to the host: status, headers (cookies apart), body."""

    status_code: int
    headers: tuple[tuple[str, str], ...]
    cookies: tuple[str, ...]
    body: bytes


def encode_http_response(value: Any) -> HttpResponseData:
    """Encode an ``http`` output binding's value, as ``azure.functions`` ``HttpResponseConverter.encode``.

    A ``func.HttpResponse`` gets ``content-type`` when it has none: its mimetype, with
    ``; charset=<charset>`` for ``text/*``; ``Set-Cookie`` headers travel apart, as
    cookies. A ``str`` is the response body for the host, which answers it with 200
    (``HttpBinding.CreateResult``; its sniffing of JSON "response objects" is not
    reproduced).

    :raises TypeError: any other value (``None`` included), with the worker's message; the
        invocation then fails.
    """
    if isinstance(value, str):
        return HttpResponseData(200, (("content-type", "text/plain; charset=utf-8"),), (), value.encode())
    if isinstance(value, func.HttpResponse):
        headers = value.headers
        pairs = [(str(k), str(v)) for k, v in headers.items()]
        if not any(k.lower() == "content-type" for k, _ in pairs):
            mimetype = value.mimetype
            content_type = (
                f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype
            )
            pairs.append(("content-type", content_type))
        cookies = tuple(v for k, v in pairs if k.lower() == "set-cookie")
        kept = tuple((k, v) for k, v in pairs if k.lower() != "set-cookie")
        return HttpResponseData(int(value.status_code), kept, cookies, value.get_body() or b"")
    python_type = type(value).__name__
    raise TypeError(
        f'unable to encode outgoing TypedData: unsupported type "http" for Python type "{python_type}"'
    )


# --------------------------------------------------------------------------------------------------
# Microsoft's worker library (Python 3.13+ only): every call to azure_functions_runtime_v1 is below.


class _BindingInfo:
    """The ``protos.BindingInfo`` direction constants the library compares against."""

    in_ = 0
    out = 1
    inout = 2
    undefined = 0


class _Protos:
    BindingInfo = _BindingInfo


@dataclass(frozen=True)
class _BindingMetadata:
    type: str
    direction: int
    data_type: int = _BindingInfo.undefined


@dataclass(frozen=True)
class _FunctionMetadata:
    """What ``Registry.add_function`` reads of a ``FunctionLoadRequest``'s ``RpcFunctionMetadata``."""

    name: str
    directory: str
    bindings: dict[str, _BindingMetadata]


def _to_datum(value: Any) -> tuple[Any, dict[str, Any]]:
    """A trigger value as the host would send it to the worker: a Datum and the trigger metadata."""
    import json  # noqa: PLC0415

    datum_type: Any = importlib.import_module("azure_functions_runtime_v1.bindings.datumdef").Datum

    if isinstance(value, func.HttpRequest):

        def strings(mapping: Mapping[str, str]) -> dict[str, Any]:
            return {k: datum_type(v, "string") for k, v in mapping.items()}

        http = {
            "method": datum_type(value.method, "string"),
            "url": datum_type(value.url, "string"),
            "headers": strings(value.headers),
            "params": strings(value.route_params),
            "query": strings(value.params),
            "body": datum_type(value.get_body(), "bytes"),
        }
        return datum_type(http, "http"), {}
    if isinstance(value, func.QueueMessage):
        times = {
            "ExpirationTime": value.expiration_time,
            "InsertionTime": value.insertion_time,
            "NextVisibleTime": value.time_next_visible,
        }
        metadata = {
            "Id": datum_type(value.id, "string"),
            "DequeueCount": datum_type(value.dequeue_count, "int"),
            "PopReceipt": datum_type(value.pop_receipt, "string"),
            **{k: datum_type(json.dumps(v.isoformat()), "json") for k, v in times.items() if v is not None},
        }
        return datum_type(value.get_body(), "bytes"), metadata
    if isinstance(value, TimerRequest):
        info = {
            "IsPastDue": value.past_due,
            "ScheduleStatus": value.schedule_status,
            "Schedule": value.schedule,
        }
        return datum_type(json.dumps(info), "json"), {}
    raise TypeError(f"no Datum for a {type(value).__name__}")


def _from_datum(datum: Any) -> Any:
    """An output Datum back to what a Python function would have returned."""
    if datum is None:
        return None
    if datum.type == "http":
        http = datum.value
        headers = {k: v.value for k, v in http["headers"].items()}
        response = func.HttpResponse(
            http["body"].value, status_code=int(http["status_code"].value), headers=headers
        )
        for cookie in http.get("cookies") or []:
            for morsel in cookie.values():
                response.headers.add("Set-Cookie", morsel.OutputString())
        return response
    return datum.value


def _load_with_runtime_v1(
    folder: Path, bindings: list[Binding], trigger: Binding, script_file: str, entry_point: str
) -> LoadedFunction:
    """Load and check through ``azure_functions_runtime_v1`` (``loader``, ``functions.Registry``)."""
    package = "azure_functions_runtime_v1"
    handle_event: Any = importlib.import_module(f"{package}.handle_event")
    native_invocation: Any = importlib.import_module(f"{package}.native_invocation")
    loader: Any = importlib.import_module(f"{package}.loader")
    threadpool: Any = importlib.import_module(f"{package}.utils.threadpool")
    importlib.import_module(f"{package}.bindings.meta").load_binding_registry()
    loader.install()
    if threadpool.get_threadpool_executor() is None:
        threadpool.start_threadpool_executor()
    name = folder.name
    try:
        main = loader.load_function(name, str(folder), str(folder / script_file), entry_point)
        directions = {"in": _BindingInfo.in_, "out": _BindingInfo.out, "inout": _BindingInfo.inout}
        metadata = _FunctionMetadata(
            name,
            str(folder),
            {b.name: _BindingMetadata(b.type, directions.get(b.direction, 0)) for b in bindings},
        )
        handle_event._functions.add_function(name, main, metadata, _Protos)
    except Exception as error:  # the library raises its own FunctionLoadError and RuntimeErrors
        raise FunctionLoadError(
            name, str(error).removeprefix(f"cannot load the {name} function: ")
        ) from error

    def invoke(value: Any, invocation_id: str) -> Invocation:
        datum, metadata = _to_datum(value)
        inputs = [(trigger.name, datum)]
        handled, ok, returned, outputs, error, trace = native_invocation.run_invocation_sync(
            invocation_id, name, inputs, metadata
        )
        if not handled:  # an async def: the coroutine path
            ok, returned, outputs, error, trace = asyncio.run(
                native_invocation.invocation_request_native(invocation_id, name, inputs, metadata)
            )
        if not ok:
            raise RuntimeError(f"{error}\n{trace}")
        return Invocation(_from_datum(returned), {k: _from_datum(v) for k, v in outputs})

    info = handle_event._functions.get_function(name)
    return LoadedFunction(
        name=name,
        directory=folder,
        main=main,
        trigger=trigger,
        outputs=tuple(info.output_types),
        has_return=bool(info.has_return),
        return_type=info.return_type.binding_name if info.return_type else None,
        requires_context=bool(info.requires_context),
        _native=invoke,
    )


def failed_function(
    folder: Path, config: Mapping[str, Any], trigger_type: str, error: Exception
) -> LoadedFunction:
    """A function the worker could not load: the host keeps it (its route, its listener), and every
    invocation fails with the load error (``GrpcWorkerChannel``'s function load errors)."""
    bindings = [Binding.from_json(b) for b in config.get("bindings", [])]
    trigger = next(b for b in bindings if b.type.lower() == trigger_type.lower())
    message = f"Worker failed to load function: '{folder.name}': {type(error).__name__}: {error}"

    def fail(value: Any, invocation_id: str) -> Invocation:
        raise RuntimeError(message)

    return LoadedFunction(folder.name, folder, fail, trigger, (), True, None, False, _native=fail)
