"""openapi.yaml: in step with the function folders and the code, and true of the running app."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import hypothesis
import requests
import schemathesis
import yaml
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.errors import ServiceError
from tests.conftest import LocalHost
from tools.emulators.azurite import PROJECT_ROOT

SPEC = PROJECT_ROOT / "openapi.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(SPEC.read_text())
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


#: Operations a function's route allows that answer nothing but a problem, so the spec leaves them out.
UNDOCUMENTED = {
    ("GET", "/api/sessions/{id}"): "404 not_found: sessions are listed, not read one by one",
}


def routes(route: str) -> set[str]:
    """The paths of a function's route: an optional last parameter (``{id?}``) gives two, with and without."""
    optional = re.fullmatch(r"(.*)/\{(\w+)\?\}", route)
    if optional is None:
        return {f"/{route}"}
    return {f"/{optional[1]}", f"/{optional[1]}/{{{optional[2]}}}"}


def function_operations() -> set[tuple[str, str]]:
    """(METHOD, /api/route) of every HTTP-triggered function folder, less :data:`UNDOCUMENTED`."""
    operations = set()
    for config_path in PROJECT_ROOT.glob("*/function.json"):
        for binding in json.loads(config_path.read_text())["bindings"]:
            if binding["type"] == "httpTrigger":
                route = binding.get("route") or config_path.parent.name
                operations |= {
                    (method.upper(), path) for method in binding["methods"] for path in routes(route)
                }
    return operations - set(UNDOCUMENTED)


def spec_operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_function_is_in_the_spec_and_every_operation_is_a_function() -> None:
    assert function_operations() == spec_operations()


def test_problem_codes_are_the_exception_tree() -> None:
    def leaves(cls: type[ServiceError]) -> set[str]:
        return {cls.code}.union(*(leaves(sub) for sub in cls.__subclasses__()))

    assert set(DOCUMENT["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]) == leaves(
        ServiceError
    )


def test_requests_http_has_an_example_of_every_operation() -> None:
    text = (PROJECT_ROOT / "requests.http").read_text()
    # {{base}} is the API's base URL (…/api), {{root}} the host's (the well-known documents).
    examples = {
        (method, re.sub(r"\{\{\w+\}\}", "{}", f"{'/api' if variable == 'base' else ''}/{route}"))
        for method, variable, route in re.findall(
            r"^(GET|POST|PATCH|DELETE) \{\{(base|root)\}\}/([\w/{}.-]+)", text, re.M
        )
    }
    # A path parameter is a variable in an example ({{sessionId}}) and a name in the spec ({id}).
    assert examples == {(method, re.sub(r"\{\w+\}", "{}", path)) for method, path in spec_operations()}


schema = schemathesis.openapi.from_path(SPEC)


def not_a_server_error_but_mail_not_configured(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except the documented 501 of the mail routes: the host here has no mail."""
    documented = "501" in case.operation.definition.raw.get("responses", {})
    if documented and response.status_code == 501 and response.json().get("code") == "mail_not_configured":
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_but_mail_not_configured,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def fresh_token(host: LocalHost) -> str:
    email = f"spec{secrets.token_hex(6)}@example.com"
    response = requests.post(
        f"{host.base_url}/api/register",
        json={"email": email, "password": "correct horse battery"},
        timeout=30,
    )
    token: str = response.json()["token"]
    return token


@schema.parametrize()
@hypothesis.settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(hypothesis.HealthCheck)
)
def test_the_app_answers_as_the_spec_says(case: Any, module_host: LocalHost) -> None:
    """No 5xx; every status, media type, header and body as documented (protected routes get a real token)."""
    protected = "security" in case.operation.definition.raw
    headers = {"X-ZUMO-AUTH": fresh_token(module_host)} if protected else None
    case.call_and_validate(base_url=module_host.base_url, headers=headers, checks=CHECKS)
