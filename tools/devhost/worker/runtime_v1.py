"""Microsoft's worker package ``azure-functions-runtime-v1`` (Python 3.13+ only).

Every call to ``azure_functions_runtime_v1`` is in this module: it is the inside
of a gRPC worker, not a library, so :func:`load_with_runtime_v1` calls its
``loader.load_function``, ``functions.Registry.add_function`` (with a
``FunctionLoadRequest``-shaped metadata object) and release 1.2.0's protobuf-free
``native_invocation`` module, turning trigger values into its ``Datum`` objects
and back. A new release may move those internals: :data:`RUNTIME_V1_VERSION` is
the release this was written against, and :func:`runtime_v1_problem` refuses another.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from tools.devhost.worker.functions import Binding, FunctionLoadError, Invocation, LoadedFunction

#: The exact release of azure-functions-runtime-v1 the optional path was written against.
RUNTIME_V1_VERSION = "1.2.0"


#: The running Python's (major, minor), read so that type checkers do not fold the version tests.
RUNNING_PYTHON = (sys.version_info.major, sys.version_info.minor)


def runtime_v1_problem() -> str | None:
    """Why Microsoft's worker package cannot be used here, or ``None`` when it can."""
    if RUNNING_PYTHON < (3, 13):
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


def load_with_runtime_v1(
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
