"""A function as the worker holds it once loaded, and how the worker calls it.

``dispatcher.py`` ``_handle__invocation_request``: each ``out`` parameter gets
a fresh ``func.Out``; after the call, the values set are the outputs, the
return value goes to ``$return``, and a function without ``$return`` that
returns something fails (``function 'x' without a $return binding returned a
non-None value``); ``async def`` functions are awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func


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
