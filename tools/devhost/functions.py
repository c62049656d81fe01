"""The functions the host runs: an HTTP function with its route, a queue or timer one with its trigger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from tools.devhost.routes import RouteTemplate
from tools.devhost.worker import LoadedFunction


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


class Trigger(Protocol):
    """A trigger binding resolved against the app settings (``QueueTrigger``, ``TimerTrigger``)."""

    @property
    def function_name(self) -> str:
        """The name of the function it triggers."""


TriggerT = TypeVar("TriggerT", bound=Trigger)
ValueT = TypeVar("ValueT")


@dataclass(frozen=True)
class ListenedFunction(Generic[TriggerT, ValueT]):
    """A function a listener runs, ready to be called: its trigger and how to call it.

    ``QueueFunction`` and ``TimerFunction`` are this with their trigger and their trigger value.
    """

    trigger: TriggerT
    #: Calls the function's entry point with the trigger value and an invocation id; returns its result.
    invoke: Callable[[ValueT, str], Any]

    @property
    def name(self) -> str:
        return self.trigger.function_name
