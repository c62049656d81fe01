"""The worker that loads the functions: Microsoft's package on Python 3.13+, and the port held to it.

Azure loads every function through ``Registry.add_function`` of the Python worker
(``azure-functions-runtime-v1`` on 3.13+); a function it refuses answers 500 on every
call. These tests load each of the app's folders through the worker the local host
uses, and a table of probe functions through both the package and the port
(``tools/devhost/worker.py``), which must accept and refuse alike, with the same message.
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from tools.devhost import worker
from tools.emulators.azurite import PROJECT_ROOT

#: The port's pass of `make test` runs these again, through the local host's own loader.
pytestmark = pytest.mark.through_host

ON_WORKER_PYTHON = sys.version_info >= (3, 13)
needs_package = pytest.mark.skipif(
    not ON_WORKER_PYTHON, reason="azure-functions-runtime-v1 installs on Python 3.13+ only (the port's pass)"
)

HTTP_IN = {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous"}
HTTP_RETURN = {"type": "http", "direction": "out", "name": "$return"}
QUEUE_IN = {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "q", "connection": "S"}
TIMER_IN = {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 * * * * *"}

#: (id, the function's source, its bindings, the trigger type): loaded by both loaders.
PROBES: list[tuple[str, str, list[dict[str, Any]], str]] = [
    (
        "context_annotated_context",
        "def main(req: func.HttpRequest, context: func.Context) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "context_with_default_none",
        "def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "context_optional",
        "def main(req: func.HttpRequest, context: typing.Optional[func.Context] = None)"
        " -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "context_or_none",
        "def main(req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "context_another_type",
        "def main(req: func.HttpRequest, context: str) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    ("context_unannotated", "def main(req, context): ...", [HTTP_IN, HTTP_RETURN], "httpTrigger"),
    (
        "parameter_not_in_function_json",
        "def main(req: func.HttpRequest, extra: str) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "binding_not_in_python",
        "def main(req: func.HttpRequest) -> None: ...",
        [HTTP_IN, {"type": "http", "direction": "out", "name": "res"}],
        "httpTrigger",
    ),
    (
        "out_on_an_in_binding",
        "def main(req: func.Out[func.HttpRequest]) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "no_out_on_an_out_binding",
        "def main(req: func.HttpRequest, res: func.HttpResponse) -> None: ...",
        [HTTP_IN, {"type": "http", "direction": "out", "name": "res"}],
        "httpTrigger",
    ),
    (
        "out_on_an_out_binding",
        "def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None: ...",
        [HTTP_IN, {"type": "http", "direction": "out", "name": "res"}],
        "httpTrigger",
    ),
    (
        "out_of_the_wrong_type",
        "def main(req: func.HttpRequest, res: func.Out[int]) -> None: ...",
        [HTTP_IN, {"type": "http", "direction": "out", "name": "res"}],
        "httpTrigger",
    ),
    (
        "non_type_annotation",
        "def main(req: typing.Union[func.HttpRequest, int]) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "http_trigger_wrong_input_type",
        "def main(req: int) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "http_trigger_as_str",
        "def main(req: str) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "http_trigger_wrong_input_type_with_data_type",
        "def main(req: int) -> func.HttpResponse: ...",
        [{**HTTP_IN, "dataType": "binary"}, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "http_wrong_return_type",
        "def main(req: func.HttpRequest) -> int: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "http_return_optional",
        "def main(req: func.HttpRequest) -> func.HttpResponse | None: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "http_return_out",
        "def main(req: func.HttpRequest) -> func.Out[func.HttpResponse]: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "return_binding_direction_in",
        "def main(req: func.HttpRequest) -> func.HttpResponse: ...",
        [HTTP_IN, {"type": "http", "direction": "in", "name": "$return"}],
        "httpTrigger",
    ),
    (
        "inout_binding",
        "def main(req: func.HttpRequest, other: str) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN, {"type": "blob", "direction": "inout", "name": "other", "path": "a/b"}],
        "httpTrigger",
    ),
    (
        "async_http",
        "async def main(req: func.HttpRequest) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
        "httpTrigger",
    ),
    (
        "queue_trigger_message",
        "def main(msg: func.QueueMessage, context: func.Context) -> None: ...",
        [QUEUE_IN],
        "queueTrigger",
    ),
    ("queue_trigger_str", "def main(msg: str) -> None: ...", [QUEUE_IN], "queueTrigger"),
    ("queue_trigger_wrong_input_type", "def main(msg: int) -> None: ...", [QUEUE_IN], "queueTrigger"),
    ("queue_trigger_dict", "def main(msg: dict) -> None: ...", [QUEUE_IN], "queueTrigger"),
    (
        "timer_trigger_request",
        "def main(timer: func.TimerRequest, context: func.Context) -> None: ...",
        [TIMER_IN],
        "timerTrigger",
    ),
    (
        "timer_trigger_wrong_input_type",
        "def main(timer: func.HttpRequest) -> None: ...",
        [TIMER_IN],
        "timerTrigger",
    ),
    ("timer_trigger_unannotated", "def main(timer): ...", [TIMER_IN], "timerTrigger"),
]


def write_probe(
    root: Path, probe_id: str, source: str, bindings: list[dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """A function folder holding ``source``; its name unique in this process (imports are cached)."""
    folder = root / f"probe_{probe_id}_{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    header = "import typing\n\nimport azure.functions as func\n\n\n"
    (folder / "__init__.py").write_text(header + textwrap.dedent(source) + "\n", encoding="utf-8")
    config = {"scriptFile": "__init__.py", "bindings": bindings}
    (folder / "function.json").write_text(json.dumps(config), encoding="utf-8")
    return folder, config


def outcome(folder: Path, config: dict[str, Any], trigger: str, *, runtime_v1: bool) -> tuple[str, Any]:
    """What a loader answers: ``("loaded", what it found)`` or ``("refused", the message)``."""
    try:
        loaded = worker.load_function(folder, config, trigger, runtime_v1=runtime_v1)
    except worker.FunctionLoadError as error:
        return "refused", str(error)
    return "loaded", (sorted(loaded.outputs), loaded.has_return, loaded.return_type, loaded.requires_context)


def app_functions() -> list[tuple[Path, dict[str, Any], str]]:
    """Every function folder of the app, its function.json and its trigger's type."""
    found = []
    for path in sorted(PROJECT_ROOT.glob("*/function.json")):
        config = json.loads(path.read_text(encoding="utf-8"))
        trigger = next(b["type"] for b in config["bindings"] if b["type"].endswith("Trigger"))
        found.append((path.parent, config, trigger))
    return found


@needs_package
@pytest.mark.parametrize(("probe_id", "source", "bindings", "trigger"), PROBES, ids=[p[0] for p in PROBES])
def test_the_port_answers_as_the_package(
    tmp_path: Path, probe_id: str, source: str, bindings: list[dict[str, Any]], trigger: str
) -> None:
    """Each probe is accepted by both loaders or refused by both, with the same message."""
    folder, config = write_probe(tmp_path, probe_id, source, bindings)
    package = outcome(folder, config, trigger, runtime_v1=True)
    port = outcome(folder, config, trigger, runtime_v1=False)
    assert port == package


@needs_package
def test_the_probes_cover_both_answers(tmp_path: Path) -> None:
    """The table holds functions the package loads and functions it refuses, for every trigger type."""
    answers: dict[tuple[str, str], int] = {}
    for probe_id, source, bindings, trigger in PROBES:
        folder, config = write_probe(tmp_path, probe_id, source, bindings)
        kind, _ = outcome(folder, config, trigger, runtime_v1=True)
        answers[kind, trigger] = answers.get((kind, trigger), 0) + 1
    for trigger in ("httpTrigger", "queueTrigger", "timerTrigger"):
        assert answers.get(("loaded", trigger)), trigger
        assert answers.get(("refused", trigger)), trigger


@needs_package
def test_the_old_wrapper_signature_is_refused_by_the_package(tmp_path: Path) -> None:
    """What broke every HTTP function in Azure: ``context: func.Context | None`` is refused."""
    folder, config = write_probe(
        tmp_path,
        "old_wrapper",
        "def main(req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse: ...",
        [HTTP_IN, HTTP_RETURN],
    )
    kind, message = outcome(folder, config, "httpTrigger", runtime_v1=True)
    assert kind == "refused"
    assert 'the "context" parameter is expected to be of type azure.functions.Context' in message


@pytest.mark.parametrize(
    ("folder", "config", "trigger"), app_functions(), ids=[f.name for f, _, _ in app_functions()]
)
def test_every_function_folder_loads(folder: Path, config: dict[str, Any], trigger: str) -> None:
    """The worker the local host uses here loads each folder; on 3.13+ the port agrees with it."""
    kind, found = outcome(folder, config, trigger, runtime_v1=worker.use_runtime_v1())
    assert kind == "loaded", found
    if ON_WORKER_PYTHON:
        assert outcome(folder, config, trigger, runtime_v1=False) == (kind, found)


def test_the_suite_runs_the_functions_on_the_package_where_it_can() -> None:
    """On Python 3.13+ the local host (and so every test through it) uses Microsoft's worker."""
    if ON_WORKER_PYTHON:
        assert worker.runtime_v1_problem() is None
        assert worker.use_runtime_v1({})
        assert "azure-functions-runtime-v1" in worker.worker_description({})
    else:
        assert not worker.use_runtime_v1({})
        with pytest.raises(worker.WorkerUnavailable, match=r"3\.13"):
            worker.use_runtime_v1({worker.WORKER_SETTING: worker.RUNTIME_V1})
    assert not worker.use_runtime_v1({worker.WORKER_SETTING: worker.PORT})
    with pytest.raises(worker.WorkerUnavailable, match="must be"):
        worker.use_runtime_v1({worker.WORKER_SETTING: "other"})
