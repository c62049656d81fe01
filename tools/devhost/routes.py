"""ASP.NET Core's route templates (``{id:int}``, ``{rest?}``, ``{*path}``, ``{name=default}``, ...).

Parsed as ``RoutePatternParser`` and ``RouteParameterParser`` parse them and matched as
the legacy ``Route``'s ``TemplateMatcher`` matches (see :class:`RouteTemplate`); the
constraints are in :mod:`tools.devhost.route_constraints`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from tools.devhost.route_constraints import RouteConstraint, RouteTemplateError


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
