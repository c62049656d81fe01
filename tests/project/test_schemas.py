"""function.json and host.json against SchemaStore's schemas (tests/project/schemas/, sources in its README).

Each schema is read with the draft its `$schema` names and an empty `referencing` registry, so a `$ref`
that left the file would fail here instead of going to the network.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator, Draft6Validator, validators
from jsonschema.protocols import Validator
from referencing import Registry

from tools.emulators.azurite import PROJECT_ROOT

SCHEMAS = Path(__file__).parent / "schemas"
#: Every function folder of the app (a project-root folder holding a function.json).
FUNCTION_FOLDERS = tuple(sorted(path.parent.name for path in PROJECT_ROOT.glob("*/function.json")))


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def validator(name: str) -> Validator:
    """The validator for the draft a schema declares, the schema itself checked against that draft first."""
    schema = load(SCHEMAS / name)
    # An unknown `$schema` would be a DeprecationWarning here, an error under the suite's filterwarnings.
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    if cls is Draft4Validator:
        # function.json declares draft-04 but three of its branches (sql and mysql output bindings) use
        # `const`, a draft-06 keyword. Read as plain draft-04 those branches match any binding, so oneOf
        # rejects every binding. SchemaStore checks draft-04 schemas with ajv-draft-04, whose vocabulary
        # has `const`; the same here: draft-04 with `const`.
        const = {"const": Draft6Validator.VALIDATORS["const"]}
        cls = validators.extend(Draft4Validator, const)  # type: ignore[no-untyped-call]
    instance: Validator = cls(schema, registry=Registry())
    return instance


FUNCTION_SCHEMA = validator("function.json")
HOST_SCHEMA = validator("host.json")


def problems(schema: Validator, document: Any) -> list[str]:
    """Every reason the schema gives, the innermost ones of each oneOf/anyOf branch included."""
    reasons: list[str] = []
    pending = list(schema.iter_errors(document))
    while pending:
        error = pending.pop()
        reasons.append(error.message)
        pending.extend(error.context or ())
    return reasons


def test_there_are_function_folders() -> None:
    """The app's function folders are found, so the parametrised checks below are not vacuous."""
    assert {"register", "login", "send_mail", "cleanup"} <= set(FUNCTION_FOLDERS)


def test_schemas_declare_their_drafts() -> None:
    """function.json's schema is read as draft-04 and host.json's as draft-07, as their `$schema` says."""
    assert load(SCHEMAS / "function.json")["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert load(SCHEMAS / "host.json")["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert FUNCTION_SCHEMA.META_SCHEMA == Draft4Validator.META_SCHEMA
    assert HOST_SCHEMA.META_SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize("folder", FUNCTION_FOLDERS)
def test_function_json_matches_schema(folder: str) -> None:
    """Each function folder's function.json is valid under SchemaStore's function.json schema."""
    assert problems(FUNCTION_SCHEMA, load(PROJECT_ROOT / folder / "function.json")) == []


def test_host_json_matches_schema() -> None:
    """host.json is valid under SchemaStore's host.json schema."""
    assert problems(HOST_SCHEMA, load(PROJECT_ROOT / "host.json")) == []


#: Stands for "no value": changed() removes the key.
REMOVE = object()


def changed(document: Any, path: tuple[str | int, ...], value: Any) -> Any:
    """A deep copy of document with the value at path set (or the key removed when value is REMOVE)."""
    copied = copy.deepcopy(document)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    if value is REMOVE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copied


#: (file the change starts from, where, new value, a reason the schema must give): each a function.json
#: the host would not load.
BAD_FUNCTIONS = {
    "direction sideways": ("login", ("bindings", 1, "direction"), "sideways", "'sideways' is not one of"),
    "httpTrigger authLevel nobody": (
        "login",
        ("bindings", 0, "authLevel"),
        "nobody",
        "'nobody' is not one of ['anonymous', 'function', 'admin']",
    ),
    "httpTrigger method fetch": ("login", ("bindings", 0, "methods"), ["fetch"], "'fetch' is not one of"),
    "httpTrigger direction out": ("login", ("bindings", 0, "direction"), "out", "'out' is not one of ['in']"),
    "binding without a name": ("login", ("bindings", 0, "name"), REMOVE, "'name' is a required property"),
    "binding without a direction": (
        "login",
        ("bindings", 1, "direction"),
        REMOVE,
        "'direction' is a required property",
    ),
    "bindings not a list": ("login", ("bindings",), {"req": "httpTrigger"}, "is not of type 'array'"),
    "dataType json": ("login", ("bindings", 0, "dataType"), "json", "'json' is not one of"),
    "disabled as text": ("login", ("disabled",), "yes", "'yes' is not of type 'boolean'"),
    "queueTrigger direction out": (
        "send_mail",
        ("bindings", 0, "direction"),
        "out",
        "'out' is not one of ['in']",
    ),
    "queueTrigger queueName a number": (
        "send_mail",
        ("bindings", 0, "queueName"),
        7,
        "7 is not of type 'string'",
    ),
    "timerTrigger runOnStartup as text": (
        "cleanup",
        ("bindings", 0, "runOnStartup"),
        "no",
        "'no' is not of type 'boolean'",
    ),
    "timerTrigger direction out": (
        "cleanup",
        ("bindings", 0, "direction"),
        "out",
        "'out' is not one of ['in']",
    ),
}


@pytest.mark.parametrize("case", BAD_FUNCTIONS)
def test_function_json_schema_rejects(case: str) -> None:
    """A function.json the host would reject fails the schema check, while the file it came from passes."""
    folder, path, value, reason = BAD_FUNCTIONS[case]
    original = load(PROJECT_ROOT / folder / "function.json")
    assert problems(FUNCTION_SCHEMA, original) == []
    reasons = problems(FUNCTION_SCHEMA, changed(original, path, value))
    assert any(reason in given for given in reasons), reasons


#: (where, new value, a reason the schema must give): each a host.json the Functions host would reject.
BAD_HOSTS = {
    "version 1.0": (("version",), "1.0", "'2.0' was expected"),
    "version as a number": (("version",), 2.0, "'2.0' was expected"),
    "no version": (("version",), REMOVE, "'version' is a required property"),
    "unknown top-level property": (
        ("extensionBundel",),
        {"id": "Microsoft.Azure.Functions.ExtensionBundle"},
        "('extensionBundel' was unexpected)",
    ),
    "unknown http property": (("extensions", "http", "routPrefix"), "api", "('routPrefix' was unexpected)"),
    "unknown extensionBundle property": (
        ("extensionBundle", "range"),
        "[4.*, 5.0.0)",
        "('range' was unexpected)",
    ),
    "queues batchSize above 32": (
        ("extensions", "queues", "batchSize"),
        64,
        "64 is greater than the maximum of 32",
    ),
    "queues messageEncoding utf8": (
        ("extensions", "queues", "messageEncoding"),
        "utf8",
        "'utf8' is not one of ['base64', 'none']",
    ),
    "queues visibilityTimeout not a time span": (
        ("extensions", "queues", "visibilityTimeout"),
        "30s",
        "'30s' does not match",
    ),
    "queues maxDequeueCount as text": (
        ("extensions", "queues", "maxDequeueCount"),
        "8",
        "'8' is not of type 'integer'",
    ),
}


@pytest.mark.parametrize("case", BAD_HOSTS)
def test_host_json_schema_rejects(case: str) -> None:
    """A host.json the host would reject fails the schema check, while ours passes."""
    path, value, reason = BAD_HOSTS[case]
    original = load(PROJECT_ROOT / "host.json")
    assert problems(HOST_SCHEMA, original) == []
    reasons = problems(HOST_SCHEMA, changed(original, path, value))
    assert any(reason in given for given in reasons), reasons


def test_schemas_stay_offline() -> None:
    """A $ref outside the schema file fails to resolve instead of being fetched from the network."""
    from referencing.exceptions import Unresolvable

    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": "https://json.schemastore.org/host.json",
    }
    cls = validators.validator_for(schema)
    with pytest.raises(Unresolvable):
        cls(schema, registry=Registry()).validate({})
