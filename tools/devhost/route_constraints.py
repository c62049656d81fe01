"""ASP.NET Core's inline route constraints (``{id:int}``, ``{name:minlength(2)}``, ...).

As ``DefaultInlineConstraintResolver`` and ``RouteOptions.ConstraintMap`` resolve them
(dotnet/aspnetcore ``src/Http/Routing/src/Constraints``), with .NET's parsing of numbers,
dates and GUIDs under the invariant culture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime


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
