"""The project's layout is what the Functions runtime, deployments and newcomers rely on."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tools.devhost.local_settings import create_local_settings
from tools.emulators.azurite import PROJECT_ROOT

FUNCTIONS = ("register", "login")
#: Every function folder of the app.
ALL_FUNCTIONS = tuple(sorted(path.parent.name for path in PROJECT_ROOT.glob("*/function.json")))


def load(path: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((PROJECT_ROOT / path).read_text())
    return document


def test_host_json() -> None:
    host = load("host.json")
    assert host["version"] == "2.0"
    # No prefix: each function's route carries its own "api/", so /.well-known/... can answer at the root.
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_json(name: str) -> None:
    """Anonymous HTTP trigger on POST /api/<name>, result returned through $return."""
    config = load(f"{name}/function.json")
    trigger, output = config["bindings"]
    assert trigger == {
        "authLevel": "anonymous",
        "type": "httpTrigger",
        "direction": "in",
        "name": "req",
        "methods": ["post"],
        "route": f"api/{name}",
    }
    assert output == {"type": "http", "direction": "out", "name": "$return"}


#: The only routes at the root of the host (RFC 8615 well-known URIs): the documents token verifiers
#: fetch, and the passkey association files.
WELL_KNOWN = {
    "jwks": ".well-known/jwks.json",
    "openid_configuration": ".well-known/openid-configuration",
    "apple_app_site_association": ".well-known/apple-app-site-association",
    "assetlinks": ".well-known/assetlinks.json",
}


def test_every_http_route_stays_under_api() -> None:
    """With an empty routePrefix, every HTTP function's route still starts with api/ (its URL unchanged),
    but for the well-known documents, which answer at the root."""
    for path in PROJECT_ROOT.glob("*/function.json"):
        for binding in json.loads(path.read_text())["bindings"]:
            if binding["type"] == "httpTrigger":
                name = path.parent.name
                assert binding["route"] == WELL_KNOWN.get(name) or binding["route"].startswith("api/"), name
    for name, route in WELL_KNOWN.items():
        (trigger, _) = load(f"{name}/function.json")["bindings"]
        assert (trigger["route"], trigger["methods"], trigger["authLevel"]) == (route, ["get"], "anonymous")


@pytest.mark.parametrize("name", ALL_FUNCTIONS)
def test_function_adapters_are_thin(name: str) -> None:
    """main() parses, calls shared and shapes the response: a handful of statements, absolute imports."""
    source = (PROJECT_ROOT / name / "__init__.py").read_text()
    tree = ast.parse(source)
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    assert len(main.body) <= 6
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert all(node.level == 0 for node in imports), "imports are absolute"
    assert any(node.module and node.module.startswith("shared") for node in imports)
    assert len(source.splitlines()) <= 25


def test_mail_function_is_triggered_by_the_mail_queue() -> None:
    """send_mail reads AUTH_MAIL_QUEUE; host.json retries for longer than a 2-minute mail outage."""
    (trigger,) = load("send_mail/function.json")["bindings"]
    assert trigger == {
        "name": "message",
        "type": "queueTrigger",
        "direction": "in",
        "queueName": "%AUTH_MAIL_QUEUE%",
        "connection": "AzureWebJobsStorage",
    }
    queues = load("host.json")["extensions"]["queues"]
    hours, minutes, seconds = (int(part) for part in queues["visibilityTimeout"].split(":"))
    retry_window = (hours * 3600 + minutes * 60 + seconds) * (queues["maxDequeueCount"] - 1)
    assert retry_window > 120, "failed sends are retried for longer than a 2-minute mail outage"
    assert queues["maxPollingInterval"] == "00:00:02", "a mail leaves within about 2 s of the request"


def requirement_names(path: str) -> set[str]:
    names = set()
    for raw in (PROJECT_ROOT / path).read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[ ]", line)[0].lower())
    return names


def test_requirements_are_runtime_only_with_ranges() -> None:
    runtime = requirement_names("requirements.txt")
    assert {"azure-functions", "azure-data-tables", "pyjwt", "argon2-cffi", "email-validator"} <= runtime
    assert not runtime & {"pytest", "ruff", "mypy", "hypothesis", "requests"}
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("azure-functions-runtime-v1=="):
            continue  # the worker Azure runs the app on: pinned exactly (runtime version control)
        if line and not line.startswith("#"):
            assert ">=" in line, f"{line}: give a lower bound"
            assert "<" in line, f"{line}: give an upper bound"


def test_dev_requirements_include_runtime() -> None:
    assert "-r requirements.txt" in (PROJECT_ROOT / "requirements-dev.txt").read_text()


def test_deployment_excludes_local_tooling() -> None:
    ignored = set((PROJECT_ROOT / ".funcignore").read_text().split())
    assert {"tools", "tests", "local.settings.json", ".venv", "node_modules", ".azurite"} <= ignored
    assert not {"shared", "register", "login", "host.json", "requirements.txt"} & ignored


def test_local_settings_never_committed() -> None:
    assert "local.settings.json" in (PROJECT_ROOT / ".gitignore").read_text().split()


def test_example_settings_name_real_settings() -> None:
    example = load("local.settings.json.example")
    values = example["Values"]
    assert isinstance(values, dict)
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AUTH_SIGNING_KEY"] == "", "the example holds no key; make run generates one"


def test_local_settings_are_created_once_with_a_random_key(tmp_path: Path) -> None:
    target = tmp_path / "local.settings.json"
    assert create_local_settings(target)
    first = json.loads(target.read_text())
    key = first["Values"]["AUTH_SIGNING_KEY"]
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert target.stat().st_mode & 0o077 == 0, "only the owner may read the key"
    assert not create_local_settings(target), "an existing file is kept"
    assert json.loads(target.read_text()) == first
    other = tmp_path / "other.json"
    create_local_settings(other)
    assert json.loads(other.read_text())["Values"]["AUTH_SIGNING_KEY"] != key
    private = first["Values"]["AUTH_SIGNING_PRIVATE_KEY"]
    assert private.startswith("-----BEGIN PRIVATE KEY-----"), (
        "an ES256 key, ready for AUTH_TOKEN_ALGORITHM=ES256"
    )
    assert json.loads(other.read_text())["Values"]["AUTH_SIGNING_PRIVATE_KEY"] != private


def test_cold_start_imports_no_mail_or_crypto_library() -> None:
    """The queue SDK, identity, cryptography, PyJWT, pyotp, Jinja2 and the ``requests`` transport are
    imported on first use, not at start.

    ``make bench`` (figure 7) times each of them alone.
    """
    import subprocess
    import sys

    script = "import sys, register, login, me, refresh, password; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    later = {"cryptography", "jinja2", "jwt", "pyotp", "segno", "msal", "zxcvbn", "requests"}
    lazy_sdks = (
        "azure.storage",
        "azure.identity",
        "azure.communication",
        "shared.storage.queue_retry",
        "azure.core.pipeline.transport._requests_basic",
    )
    heavy = [m for m in loaded if m.split(".")[0] in later or m.startswith(lazy_sdks)]
    assert heavy == []
