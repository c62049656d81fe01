"""The port of the worker's load-time checks (``functions.py`` ``Registry.add_function``).

Every check, in its order and with its messages: binding directions (``inout``
refused, ``$return`` must be ``out``); the ``context`` parameter's annotation must
be a type named ``Context`` (``Optional[...]`` and ``... | None`` are refused); the
parameters must be exactly the bindings' names; ``func.Out[T]`` on ``out`` bindings
only, with one argument; no non-type annotations; each annotation checked against
its binding type by the SDK's converters (``check_input_type_annotation`` /
``check_output_type_annotation``, ``bindings/meta.py``, ``GenericBinding`` for unknown
types); an explicit ``$return``'s return annotation checked the same way
(``get_function_return_type``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

from tools.devhost.worker.functions import Binding, FunctionLoadError

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


def check_signature(
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
