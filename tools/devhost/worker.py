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
- ``functions.py`` ``Registry.add_function``: every load-time check, in its order and
  with its messages: binding directions (``inout`` refused, ``$return`` must be
  ``out``); the ``context`` parameter's annotation must be a type named ``Context``
  (``Optional[...]`` and ``... | None`` are refused); the parameters must be exactly
  the bindings' names; ``func.Out[T]`` on ``out`` bindings only, with one argument;
  no non-type annotations; each annotation checked against its binding type by the
  SDK's converters (``check_input_type_annotation`` / ``check_output_type_annotation``,
  ``bindings/meta.py``, ``GenericBinding`` for unknown types); an explicit ``$return``'s
  return annotation checked the same way (``get_function_return_type``);
- ``dispatcher.py`` ``_handle__invocation_request``: each ``out`` parameter gets
  a fresh ``func.Out``; after the call, the values set are the outputs, the
  return value goes to ``$return``, and a function without ``$return`` that
  returns something fails (``function 'x' without a $return binding returned a
  non-None value``); ``async def`` functions are awaited.

Microsoft's ``azure-functions-runtime-v1`` (the worker Azure runs this model on for
Python 3.13+) installs only on 3.13 and newer, and this project supports 3.11 and up;
see docs/local-host.md. On 3.13+, with release :data:`RUNTIME_V1_VERSION` installed
(requirements.txt pins it), :func:`load_function` loads through its
``loader.load_function`` and ``functions.Registry`` and calls through its
``native_invocation`` module: that is the default, and what the suite runs. This
module's own loader (the port) runs on 3.11 and 3.12, or with ``DEVHOST_WORKER=port``;
``tests/devhost/test_worker.py`` loads a table of probe functions through both and requires
the same answers.
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
import platform
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
#: Selects this module's own loader (the port) even where the package could run.
PORT = "port"
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
    #: ``dataType`` (``binary``, ``string``, ``stream``), which the host passes as ``BindingInfo.data_type``.
    data_type: str | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Binding:
        return cls(
            name=str(document.get("name") or ""),
            type=str(document.get("type") or ""),
            direction=str(document.get("direction") or "in").lower(),
            data_type=str(document["dataType"]).lower() if document.get("dataType") else None,
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


# The checks of ``functions.py`` ``Registry.add_function``, in its order and with its messages.
# ``typing_inspect``'s helpers as the worker ships them (``utils/typing_inspect.py``), and its
# ``GenericBinding`` (``bindings/generic.py``) for binding types the SDK does not register.

_TypingAlias: tuple[type, ...] = (
    getattr(typing, "_GenericAlias"),  # noqa: B009 - private names, read as the worker reads them
    getattr(typing, "_SpecialGenericAlias"),  # noqa: B009
)


def _is_generic_type(tp: Any) -> bool:
    """``typing_inspect.is_generic_type``."""
    return (isinstance(tp, type) and issubclass(tp, typing.Generic)) or (
        isinstance(tp, _TypingAlias)
        and getattr(tp, "__origin__", None) not in (typing.Union, tuple, typing.ClassVar, Callable)
    )


def _origin(tp: Any) -> Any:
    """``typing_inspect.get_origin``."""
    if isinstance(tp, getattr(typing, "_GenericAlias")):  # noqa: B009
        return tp.__origin__ if tp.__origin__ is not typing.ClassVar else None
    return typing.Generic if tp is typing.Generic else None


def _args(tp: Any) -> tuple[Any, ...]:
    """``typing_inspect.get_args``."""
    if isinstance(tp, getattr(typing, "_GenericAlias")):  # noqa: B009
        found: tuple[Any, ...] = tp.__args__
        if _origin(tp) is Callable and found[0] is not Ellipsis:
            return (list(found[:-1]), found[-1])
        return found
    return ()


class _GenericBinding:
    """``bindings/generic.py``: what the worker checks a binding type the SDK does not know against."""

    @staticmethod
    def check_input_type_annotation(pytype: type) -> bool:
        return issubclass(pytype, (str, bytes))

    @staticmethod
    def check_output_type_annotation(pytype: type) -> bool:
        return issubclass(pytype, (str, bytes, bytearray))

    @staticmethod
    def has_implicit_output(binding_type: str) -> bool:
        return False


def _binding(binding_type: str) -> Any:
    """``bindings/meta.py`` ``get_binding``: the SDK's converter for the type, else the generic one."""
    return func.get_binding_registry().get(binding_type) or _GenericBinding  # type: ignore[no-untyped-call]


def _has_implicit_output(binding_type: str) -> bool:
    """``bindings/meta.py`` ``has_implicit_output``."""
    binding = _binding(binding_type)
    if binding is _GenericBinding:
        return _GenericBinding.has_implicit_output(binding_type)
    return bool(getattr(binding, "has_implicit_output", lambda: False)())


def _is_out_annotation(annotation: Any) -> bool:
    """Whether a parameter's annotation is ``func.Out[...]`` (by name, as the worker tests it)."""
    if _is_generic_type(annotation):
        origin = _origin(annotation)
        if origin is not None:
            return isinstance(origin, type) and origin.__name__ == "Out"
    return isinstance(annotation, type) and annotation.__name__ == "Out"


def _check_context(name: str, parameters: dict[str, Any], bound: Mapping[str, Binding], hints: Any) -> bool:
    """``Registry.is_context_required``: ``context`` is passed when named and not a binding."""
    if "context" not in parameters or "context" in bound:
        return False
    parameters.pop("context")
    if "context" in hints:
        annotation = hints["context"]
        if not isinstance(annotation, type) or annotation.__name__ != "Context":
            raise FunctionLoadError(
                name,
                'the "context" parameter is expected to be of type azure.functions.Context, '
                f'got "{annotation!r}"',
            )
    return True


def _check_parameter(name: str, parameter: str, binding: Binding, hints: Mapping[str, Any]) -> None:
    """``Registry.validate_function_params``, for one parameter."""
    annotated = parameter in hints
    annotation = hints.get(parameter)
    is_out = annotated and _is_out_annotation(annotation)
    binding_is_out = binding.direction == "out"
    if is_out:
        arguments = _args(annotation)
        if len(arguments) != 1:
            raise FunctionLoadError(name, f"binding {parameter} has invalid Out annotation {annotation!r}")
        python_type = arguments[0]
        if isinstance(python_type, tuple) and _is_generic_type(python_type[0]):
            python_type = python_type[0][python_type[1:]]
    else:
        python_type = annotation
    if annotated and not isinstance(python_type, type) and not _is_generic_type(python_type):
        raise FunctionLoadError(name, f"binding {parameter} has invalid non-type annotation {annotation!r}")
    if binding_is_out and annotated and not is_out:
        raise FunctionLoadError(
            name,
            f'binding {parameter} is declared to have the "out" direction, but its annotation '
            "in Python is not a subclass of azure.functions.Out",
        )
    if not binding_is_out and is_out:
        raise FunctionLoadError(
            name,
            f'binding {parameter} is declared to have the "in" direction in function.json, but its '
            "annotation is azure.functions.Out in Python",
        )
    if not annotated:
        return
    generic = python_type in (str, bytes) and not _has_implicit_output(binding.type)
    checker = _GenericBinding if generic else _binding(binding.type)
    check = checker.check_output_type_annotation if is_out else checker.check_input_type_annotation
    if check(python_type):
        return
    if binding.data_type:
        raise FunctionLoadError(
            name,
            f'binding type "{parameter!r}" and dataType "{binding.type}" in function.json do not match '
            f"the corresponding function parameter's Python type annotation {python_type.__name__}",
        )
    raise FunctionLoadError(
        name,
        f'type of {parameter} binding in function.json "{binding.type}" does not match its Python '
        f'annotation "{python_type.__name__}"',
    )


def _check_return(name: str, hints: Mapping[str, Any], return_type: str | None) -> None:
    """``Registry.get_function_return_type``: an explicit ``$return``'s annotation must fit its type."""
    if return_type is None or "return" not in hints:
        return
    annotation = hints["return"]
    origin = _origin(annotation) if _is_generic_type(annotation) else None
    if origin is not None and origin.__name__ == "Out":
        raise FunctionLoadError(name, "return annotation should not be azure.functions.Out")
    if not isinstance(annotation, type):
        raise FunctionLoadError(name, f"has invalid non-type return annotation {annotation!r}")
    # The worker's ``return_pytype is (str, bytes)`` is never true: no "generic" switch here either.
    if not _binding(return_type).check_output_type_annotation(annotation):
        raise FunctionLoadError(
            name,
            f'Python return annotation "{annotation.__name__}" does not match binding type "{return_type}"',
        )


def _check_signature(
    name: str, main: Callable[..., Any], bindings: list[Binding]
) -> tuple[tuple[str, ...], bool, str | None, bool]:
    """``Registry.add_function``'s checks; :returns: the out parameters, has_return, its type, context.

    :raises FunctionLoadError: with the worker's message, for the first check that fails.
    :raises NameError: an annotation that does not resolve (``typing.get_type_hints``), as there.
    """
    bound: dict[str, Binding] = {}
    has_return = has_implicit_return = False
    return_type: str | None = None
    for binding in bindings:
        if binding.direction == "inout":
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        if binding.name == "$return" and binding.direction != "out":
            raise FunctionLoadError(name, '"$return" binding must have direction set to "out"')
        implicit = binding.name != "$return" and _has_implicit_output(binding.type)
        if binding.name != "$return":
            bound[binding.name] = binding
        if not has_return and (binding.name == "$return" or implicit):
            return_type = binding.type  # ``get_return_binding``: an explicit $return wins
        has_return = has_return or binding.name == "$return"
        has_implicit_return = has_implicit_return or implicit
    parameters = dict(inspect.signature(main).parameters)
    hints = typing.get_type_hints(main)
    requires_context = _check_context(name, parameters, bound, hints)
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
    for parameter in parameters:
        _check_parameter(name, parameter, bound[parameter], hints)
    if has_return:
        _check_return(name, hints, return_type)
    outputs = tuple(p for p in parameters if bound[p].direction == "out")
    return outputs, has_return or has_implicit_return, return_type, requires_context


#: The running Python's (major, minor), read so that type checkers do not fold the version tests.
_RUNNING = (sys.version_info.major, sys.version_info.minor)


class WorkerUnavailable(RuntimeError):
    """``DEVHOST_WORKER=runtime-v1`` was asked for where Microsoft's worker cannot run."""


def runtime_v1_problem() -> str | None:
    """Why Microsoft's worker package cannot be used here, or ``None`` when it can."""
    if _RUNNING < (3, 13):
        return f"azure-functions-runtime-v1 needs Python 3.13 or newer; this is {platform.python_version()}"
    try:
        installed = importlib.metadata.version("azure-functions-runtime-v1")
    except importlib.metadata.PackageNotFoundError:
        return "azure-functions-runtime-v1 is not installed (pip install -r requirements.txt)"
    if installed != RUNTIME_V1_VERSION:
        return (
            f"azure-functions-runtime-v1 {installed} is installed; requirements.txt pins {RUNTIME_V1_VERSION}"
        )
    return None


def use_runtime_v1(environ: Mapping[str, str] | None = None) -> bool:
    """Whether to load and call functions through Microsoft's ``azure-functions-runtime-v1``.

    ``DEVHOST_WORKER`` chooses: ``runtime-v1`` (the package, or an error where it cannot
    run), ``port`` (this module's own loader). Unset, the package is used wherever it can
    run (Python 3.13 or newer with the pinned release installed: what Azure runs for such
    apps), and the port elsewhere.

    :raises WorkerUnavailable: ``runtime-v1`` was asked for and cannot be used.
    """
    environ = os.environ if environ is None else environ
    asked = (environ.get(WORKER_SETTING) or "").strip().lower()
    if asked not in ("", RUNTIME_V1, PORT):
        raise WorkerUnavailable(f"{WORKER_SETTING} must be {RUNTIME_V1!r} or {PORT!r}, not {asked!r}")
    if asked == PORT:
        return False
    problem = runtime_v1_problem()
    if problem is not None and asked == RUNTIME_V1:
        raise WorkerUnavailable(f"{WORKER_SETTING}={RUNTIME_V1}: {problem}")
    if problem is not None and _RUNNING >= (3, 13):
        logging.getLogger("devhost.worker").warning("%s: using the local host's own loader", problem)
    return problem is None


def worker_description(environ: Mapping[str, str] | None = None) -> str:
    """One line for the start banner: which Python and which worker load the functions."""
    python = f"Python {platform.python_version()} ({sys.executable})"
    if use_runtime_v1(environ):
        return f"{python}, Microsoft's worker azure-functions-runtime-v1 {RUNTIME_V1_VERSION}"
    return f"{python}, the local host's port of the Python worker's loader"


def load_function(
    folder: Path, config: Mapping[str, Any], trigger_type: str, *, runtime_v1: bool | None = None
) -> LoadedFunction:
    """Load ``folder`` (its ``function.json`` is ``config``) as the worker's function load request does.

    ``runtime_v1`` chooses the loader: Microsoft's package (``True``), the port
    (``False``), or as :func:`use_runtime_v1` says (``None``).

    :raises FunctionLoadError: what the worker answers for a function it cannot load.
    """
    name = folder.name
    bindings = [Binding.from_json(b) for b in config.get("bindings", [])]
    trigger = next(b for b in bindings if b.type == trigger_type)
    script_file = str(config.get("scriptFile") or DEFAULT_SCRIPT_FILE)
    entry_point = str(config.get("entryPoint") or DEFAULT_ENTRY_POINT)
    if use_runtime_v1() if runtime_v1 is None else runtime_v1:
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


#: ``protos.BindingInfo.DataType``: ``undefined`` is 0, as the host sends a binding without ``dataType``.
_DATA_TYPES = {"string": 1, "binary": 2, "stream": 3}


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
            {
                b.name: _BindingMetadata(
                    b.type, directions.get(b.direction, 0), _DATA_TYPES.get(b.data_type or "", 0)
                )
                for b in bindings
            },
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
