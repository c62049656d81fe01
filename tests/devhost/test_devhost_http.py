"""HTTP functions in the local host, as the Functions host (and ``func start``) serves them.

Each host here serves a throwaway function app written to a temporary folder;
its functions answer with (and record in ``records.jsonl``) what they received.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.devhost.apps import ThrowawayApp, never_imported, write_app
from tools.devhost import host as devhost
from tools.devhost.cors import CorsPolicy
from tools.devhost.route_constraints import RouteTemplateError
from tools.devhost.routes import RouteTemplate, route_pattern
from tools.devhost.server import query_parameters

#: The port's pass of `make test` runs these again, through the local host's own loader.
pytestmark = pytest.mark.through_host

#: Answers with what it received, and records it.
RECORDER = """
import json
from pathlib import Path

import azure.functions as func

RECORDS = Path(__file__).resolve().parent.parent / "records.jsonl"


def main(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = req.get_body()
    seen = {
        "function": context.function_name,
        "method": req.method,
        "headers": dict(req.headers),
        "params": dict(req.params),
        "route": dict(req.route_params),
        "body": body.decode("latin-1") if len(body) < 100 else f"{len(body)} bytes",
    }
    with RECORDS.open("a", encoding="utf-8") as records:
        records.write(json.dumps(seen) + "\\n")
    return func.HttpResponse(json.dumps(seen), mimetype="application/json")
"""

FAILING = """
def main(req):
    raise RuntimeError("do not show this to clients")
"""

RETURNS_NONE = """
def main(req):
    return None
"""

OUT_PARAMETER = """
import azure.functions as func


def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("set through func.Out", status_code=202))
"""

OUT_UNSET = """
import azure.functions as func


def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    pass
"""

BROKEN_IMPORT = """
import a_module_that_is_not_installed


def main(req):
    return None
"""

#: Must never be imported: the host refuses its function before loading it.
MARKING = never_imported("req")


def http_function(
    route: str | None, methods: list[str] | None = None, output: str = "$return"
) -> dict[str, Any]:
    """A function.json with an HTTP trigger and an ``http`` output named ``output``."""
    trigger: dict[str, Any] = {
        "type": "httpTrigger",
        "direction": "in",
        "name": "req",
        "authLevel": "anonymous",
    }
    if route is not None:
        trigger["route"] = route
    if methods is not None:
        trigger["methods"] = methods
    return {"bindings": [trigger, {"type": "http", "direction": "out", "name": output}]}


@dataclass
class HttpApp(ThrowawayApp):
    """A throwaway function app served by ``python -m tools.devhost``."""

    @classmethod
    def write(
        cls,
        root: Path,
        host_json: dict[str, Any],
        settings: dict[str, Any],
        functions: dict[str, tuple[dict[str, Any], str]],
    ) -> HttpApp:
        write_app(root, host_json, settings, functions)
        return cls(root)

    def start(self) -> HttpApp:
        self.spawn(devhost.app_environment({}))
        return self

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"http://127.0.0.1:{self.port}{path}", timeout=10, **kwargs)


ORIGINS = "https://app.example,https://Other.example, https://spaced.example"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpApp]:
    """The main app: routePrefix v1, a 1 KiB body limit, three disabled functions, CORS with credentials."""
    settings = {
        "Values": {
            "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1024",
            "AzureWebJobs.hidden.Disabled": "true",
            "AzureWebJobs_hidden2_Disabled": "1",
            "AzureWebJobs.a_shadow.Disabled": "TRUE",
            "AzureWebJobs.visible.Disabled": "false",
        },
        "Host": {"CORS": ORIGINS, "CORSCredentials": True},
    }
    functions = {
        "echo": (http_function("echo/{*rest}", ["get", "post", "put"]), RECORDER),
        "postonly": (http_function("post-only", ["post"]), RECORDER),
        "zdup": (http_function("post-only", ["POST", "delete"]), MARKING),
        "zget": (http_function("post-only", ["get"]), RECORDER),
        "items": (http_function("items/{id:int}/{name?}"), RECORDER),
        "letters": (http_function("letters/{name:alpha:minlength(2)}"), RECORDER),
        "pages": (http_function("pages/{number:range(1,5)}/{kind=summary}"), RECORDER),
        "a_param": (http_function("things/{id}"), RECORDER),
        "b_literal": (http_function("things/special"), RECORDER),
        "c_literal": (http_function("stuff/special"), RECORDER),
        "d_param": (http_function("stuff/{id}"), RECORDER),
        "hidden": (http_function(None), RECORDER),
        "hidden2": (http_function(None), RECORDER),
        "visible": (http_function(None), RECORDER),
        "a_shadow": (http_function("shadow/{x}"), RECORDER),
        "b_shadowed": (http_function("shadow/x"), RECORDER),
        "boom": (http_function("boom"), FAILING),
        "returns_none": (http_function("returns-none"), RETURNS_NONE),
        "out": (http_function("out", output="res"), OUT_PARAMETER),
        "out_unset": (http_function("out-unset", output="res"), OUT_UNSET),
        "admin_route": (http_function("admin/thing"), MARKING),
        "broken_import": (http_function("broken-import"), BROKEN_IMPORT),
        "bad_signature": (http_function("bad-signature", output="res"), RECORDER),
    }
    http_app = HttpApp.write(
        tmp_path_factory.mktemp("http"),
        {"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}},
        settings,
        functions,
    ).start()
    yield http_app
    assert http_app.stop() == 0


def function_of(response: requests.Response) -> str:
    assert response.status_code == 200, response.status_code
    name: str = response.json()["function"]
    return name


class TestRouting:
    """Routes, methods and route values, as the host maps and matches them."""

    def test_method_not_listed_is_404(self, app: HttpApp) -> None:
        """A method no function on that route lists matches no route: 404, not 405."""
        assert function_of(app.request("POST", "/v1/post-only")) == "postonly"
        assert function_of(app.request("GET", "/v1/post-only")) == "zget"  # another function's method
        assert app.request("PUT", "/v1/post-only").status_code == 404
        assert app.request("PATCH", "/v1/echo/x").status_code == 404

    def test_constraints(self, app: HttpApp) -> None:
        """Inline constraints filter matches; a value that fails one is 404."""
        assert app.request("GET", "/v1/items/42").json()["route"] == {"id": "42"}
        assert app.request("GET", "/v1/items/-7/x").json()["route"] == {"id": "-7", "name": "x"}
        assert app.request("GET", "/v1/items/4x").status_code == 404
        assert app.request("GET", "/v1/items/99999999999").status_code == 404  # not an Int32
        assert app.request("GET", "/v1/letters/Ab").json()["route"] == {"name": "Ab"}
        assert app.request("GET", "/v1/letters/a").status_code == 404
        assert app.request("GET", "/v1/letters/a1").status_code == 404
        assert app.request("GET", "/v1/pages/5").json()["route"] == {"number": "5", "kind": "summary"}
        assert app.request("GET", "/v1/pages/6").status_code == 404

    def test_optional_and_catch_all_values(self, app: HttpApp) -> None:
        """A missing optional parameter is not in route_params; a catch-all takes the rest of the path."""
        assert "name" not in app.request("GET", "/v1/items/1").json()["route"]
        assert app.request("GET", "/v1/echo/a/b%20c/d").json()["route"] == {"rest": "a/b c/d"}
        assert app.request("GET", "/v1/echo").json()["route"] == {}
        assert app.request("GET", "/v1/ITEMS/3/").json()["route"] == {"id": "3"}  # case, trailing slash

    def test_first_route_by_function_name_wins(self, app: HttpApp) -> None:
        """The host orders routes by function name, not by literal segments (host issue #9876)."""
        assert function_of(app.request("GET", "/v1/things/special")) == "a_param"
        assert function_of(app.request("GET", "/v1/stuff/special")) == "c_literal"
        assert function_of(app.request("GET", "/v1/stuff/other")) == "d_param"

    def test_route_prefix_from_host_json(self, app: HttpApp) -> None:
        """extensions.http.routePrefix replaces api."""
        assert app.request("GET", "/v1/visible").status_code == 200
        assert app.request("GET", "/api/visible").status_code == 404

    def test_conflicting_and_reserved_routes_are_in_error(self, app: HttpApp) -> None:
        """As ScriptHost.ValidateFunction: logged as in error, never loaded."""
        assert (
            "The 'zdup' function is in error: The route specified conflicts with the route defined by "
            "function 'postonly'." in app.log
        )
        assert (
            "The 'admin_route' function is in error: The specified route conflicts with one or more built "
            "in routes." in app.log
        )
        assert not (app.root / "imported").exists()


def test_functions_the_worker_cannot_load_fail_each_call(app: HttpApp) -> None:
    """As the worker refuses them (import error, signature not as function.json says): logged, then 500."""
    assert app.request("GET", "/v1/broken-import").status_code == 500
    assert app.request("GET", "/v1/bad-signature").status_code == 500
    assert "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'" in app.log
    assert (
        "cannot load the bad_signature function: the following parameters are declared in function.json "
        "but not in Python: {'res'}" in app.log
    )
    assert function_of(app.request("GET", "/v1/visible")) == "visible"  # the others still work


class TestDisabled:
    """AzureWebJobs.<name>.Disabled, as the host reads it."""

    def test_disabled_functions_answer_404(self, app: HttpApp) -> None:
        """true or 1, with dots or underscores; false leaves the function on."""
        assert app.request("GET", "/v1/hidden").status_code == 404
        assert app.request("GET", "/v1/hidden2").status_code == 404
        assert function_of(app.request("GET", "/v1/visible")) == "visible"

    def test_disabled_route_still_shadows_later_ones(self, app: HttpApp) -> None:
        """The disabled function keeps its route (first by name), so a later match is not reached."""
        assert app.request("GET", "/v1/shadow/x").status_code == 404
        assert not any(record["function"] == "b_shadowed" for record in app.all_records())


class TestRequests:
    """What a function receives of a request."""

    def test_repeated_headers_and_query_values_are_joined(self, app: HttpApp) -> None:
        """Names lower-cased, repeated values joined with ',' (no space); empty query values dropped."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
        connection.putrequest("GET", "/v1/echo/h?q=1&Q=2&empty=&flag")
        connection.putheader("X-Twice", "a")
        connection.putheader("x-twice", "b, c")
        connection.endheaders()
        seen = json.loads(connection.getresponse().read())
        connection.close()
        assert seen["headers"]["x-twice"] == "a,b, c"
        assert all(name == name.lower() for name in seen["headers"])
        assert seen["params"] == {"q": "1,2"}

    def test_body_only_when_content_length_says_so(self, app: HttpApp) -> None:
        """A Content-Length body is passed; none is b''; a chunked one is not passed (host issue #7930)."""
        assert app.request("POST", "/v1/echo/b", data=b"hello").json()["body"] == "hello"
        assert app.request("GET", "/v1/echo/b").json()["body"] == ""
        chunked = app.request("POST", "/v1/echo/b", data=iter([b"chun", b"ked"]))
        assert chunked.json()["body"] == ""
        assert "chunked request body is not passed" in app.log

    def test_expect_100_continue_is_answered_before_the_body(self, app: HttpApp) -> None:
        """The interim 100 goes out at once (the response itself is buffered and sent whole)."""
        with (
            socket.create_connection(("127.0.0.1", app.port), timeout=10) as connection,
            connection.makefile("rb") as reader,
        ):
            connection.sendall(
                b"POST /v1/echo/continue HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"  # before any body was sent
            assert reader.readline() == b"\r\n"
            connection.sendall(b"hello")
            assert reader.readline().startswith(b"HTTP/1.1 200 ")
            length = 0
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert json.loads(reader.read(length))["body"] == "hello"

    def test_body_over_the_limit_is_refused_before_the_function_runs(self, app: HttpApp) -> None:
        """Over FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: the host's 500 (issue #10519), connection closed."""
        before = len(app.all_records())
        refused = app.request("POST", "/v1/echo/big", data=b"x" * 1025)
        assert refused.status_code == 500
        assert refused.headers["Connection"] == "close"
        assert refused.content == b""
        assert len(app.all_records()) == before
        assert "Request body too large. The max request body size is 1024 bytes." in app.log
        assert app.request("POST", "/v1/echo/big", data=b"x" * 1024).json()["body"] == "1024 bytes"


class TestResponses:
    """How what a function returns, sets or raises becomes the response."""

    def test_unhandled_exception_is_a_bare_500_and_a_log_line(self, app: HttpApp) -> None:
        """No body and no traceback for the client; the traceback in the host's log."""
        response = app.request("GET", "/v1/boom")
        assert (response.status_code, response.content) == (500, b"")
        assert "do not show" not in response.text
        assert "Executed 'Functions.boom' (Failed" in app.log
        assert "RuntimeError: do not show this to clients" in app.log

    def test_return_value_and_out_parameter(self, app: HttpApp) -> None:
        """$return carries the returned response; a named http output the func.Out value."""
        echoed = app.request("GET", "/v1/echo/ct")
        assert echoed.headers["Content-Type"] == "application/json"
        out = app.request("GET", "/v1/out")
        assert (out.status_code, out.text) == (202, "set through func.Out")
        assert out.headers["Content-Type"] == "text/plain; charset=utf-8"  # the worker's default

    def test_nothing_to_send(self, app: HttpApp) -> None:
        """An unset func.Out is the host's empty 200; None for $return fails the invocation (500)."""
        unset = app.request("GET", "/v1/out-unset")
        assert (unset.status_code, unset.content) == (200, b"")
        assert app.request("GET", "/v1/returns-none").status_code == 500
        assert "unable to encode outgoing TypedData: unsupported type" in app.log
        assert 'for Python type "NoneType"' in app.log


class TestCors:
    """Host.CORS and Host.CORSCredentials from local.settings.json, as func start applies them."""

    def test_preflight_from_a_listed_origin(self, app: HttpApp) -> None:
        """204 before routing, the origin echoed, credentials allowed, Vary: Origin for a list."""
        response = app.request(
            "OPTIONS",
            "/v1/nowhere",
            headers={
                "Origin": "https://other.example",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type, x-zumo-auth",
            },
        )
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://other.example"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Access-Control-Allow-Methods"] == "PUT"
        assert response.headers["Access-Control-Allow-Headers"] == "content-type,x-zumo-auth"
        assert response.headers["Vary"] == "Origin"
        assert "Access-Control-Max-Age" not in response.headers

    def test_other_origins_get_no_cors_headers(self, app: HttpApp) -> None:
        """Unlisted origins, and a listed one written with a space after the comma (never trimmed)."""
        for origin in ("https://evil.example", "https://spaced.example"):
            preflight = app.request(
                "OPTIONS", "/v1/echo/x", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
            )
            assert preflight.status_code == 204
            assert "Access-Control-Allow-Origin" not in preflight.headers
            assert (
                "Access-Control-Allow-Origin"
                not in app.request("GET", "/v1/echo/x", headers={"Origin": origin}).headers
            )

    def test_actual_requests_including_errors(self, app: HttpApp) -> None:
        """A listed origin gets its CORS headers on every response, 404 and 500 included."""
        for path in ("/v1/echo/x", "/v1/nowhere", "/v1/boom"):
            response = app.request("GET", path, headers={"Origin": "https://app.example"})
            assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_empty_route_prefix_and_no_cors(tmp_path: Path) -> None:
    """routePrefix "" serves routes at the root; without Host.CORS a preflight is routed like any request."""
    functions = {"ping": (http_function(None, ["get"]), RECORDER)}
    bare = HttpApp.write(
        tmp_path, {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}, {"Values": {}}, functions
    ).start()
    try:
        assert function_of(bare.request("GET", "/ping")) == "ping"
        assert bare.request("GET", "/api/ping").status_code == 404
        preflight = bare.request(
            "OPTIONS",
            "/ping",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code == 404
        assert (
            "Access-Control-Allow-Origin" not in bare.request("GET", "/ping", headers={"Origin": "x"}).headers
        )
    finally:
        assert bare.stop() == 0


def test_wildcard_origin_with_credentials_does_not_start(tmp_path: Path) -> None:
    """As CorsPolicyBuilder.Build throws: '*' with CORSCredentials stops func start."""
    settings = {"Values": {}, "Host": {"CORS": "*", "CORSCredentials": True}}
    broken = HttpApp.write(tmp_path, {"version": "2.0"}, settings, {"ping": (http_function(None), RECORDER)})
    with pytest.raises(RuntimeError, match="exited with status 1"):
        broken.start()
    deadline = time.monotonic() + 5
    while "does not allow specifying a wildcard" not in broken.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "does not allow specifying a wildcard (any) origin and credentials" in broken.log


class TestRouteTemplates:
    """ASP.NET Core route templates and inline constraints, without a host."""

    @pytest.mark.parametrize(
        ("template", "path", "values"),
        [
            ("a/{id:int}", "/a/+5", {"id": "+5"}),
            ("a/{id:long}", "/a/9999999999", {"id": "9999999999"}),
            ("a/{b:bool}", "/a/TRUE", {"b": "TRUE"}),
            (
                "a/{g:guid}",
                "/a/0f8fad5b-d9cb-469f-a165-70867728950e",
                {"g": "0f8fad5b-d9cb-469f-a165-70867728950e"},
            ),
            ("a/{g:guid}", "/a/{0F8FAD5BD9CB469FA16570867728950E}", None),
            ("a/{d:datetime}", "/a/2024-02-29", {"d": "2024-02-29"}),
            ("a/{d:datetime}", "/a/2023-02-29", None),
            ("a/{x:decimal}", "/a/1,000.5", {"x": "1,000.5"}),
            ("a/{x:double}", "/a/-1.5e3", {"x": "-1.5e3"}),
            ("a/{x:float}", "/a/Infinity", {"x": "Infinity"}),
            ("a/{x:float}", "/a/1e", None),
            ("a/{s:maxlength(3)}", "/a/abcd", None),
            ("a/{s:length(2,3)}", "/a/abc", {"s": "abc"}),
            ("a/{s:length(2)}", "/a/abc", None),
            ("a/{n:min(3)}", "/a/2", None),
            ("a/{n:max(3)}", "/a/3", {"n": "3"}),
            ("a/{s:regex(^[a-c]+-\\d$)}", "/a/CAB-1", {"s": "CAB-1"}),
            ("a/{s:regex(^\\d{{3}}$)}", "/a/123", {"s": "123"}),
            ("a/{s:regex(^\\d{{3}}$)}", "/a/1234", None),
            ("a/{f:file}", "/a/report.pdf", {"f": "report.pdf"}),
            ("a/{f:nonfile}", "/a/report.pdf", None),
            ("a/{name}.{ext}", "/a/x.tar.gz", {"name": "x.tar", "ext": "gz"}),
            ("a/{id?}", "/a", {}),
            ("a/{id=7}", "/a", {"id": "7"}),
            ("a/{*path}", "/a/b%2Fc/d", {"path": "b%2Fc/d"}),
            ("a/{**path:minlength(3)}", "/a/b", None),
            ("a/b", "/a/b/c", None),
            ("a/{id}", "/a//", None),
        ],
    )
    def test_matches(self, template: str, path: str, values: dict[str, str] | None) -> None:
        """Each constraint as its ASP.NET Core class parses values (invariant culture)."""
        found = RouteTemplate(template).fullmatch(path)
        assert (None if found is None else found.groupdict()) == values

    @pytest.mark.parametrize(
        ("template", "message"),
        [
            ("a/{id:nope}", "could not be resolved"),
            ("a/{id:min(x)}", "invalid arguments"),
            ("a/{*rest}/b", "catch-all parameter can only appear as the last segment"),
            ("a/{id?=1}", "optional parameter cannot have default"),
            ("a/{id}/{ID}", "appears more than one time"),
            ("a//b", "cannot appear consecutively"),
            ("a/{id", "incomplete parameter"),
        ],
    )
    def test_refused_templates(self, template: str, message: str) -> None:
        """Templates the host could not map (its start fails with the message)."""
        with pytest.raises(RouteTemplateError, match=message):
            RouteTemplate(template)

    def test_prefix(self) -> None:
        """An empty prefix maps the template alone."""
        assert route_pattern("", "ping").fullmatch("/ping") is not None
        assert route_pattern("api", "ping").fullmatch("/ping") is None

    def test_query_parameters(self) -> None:
        """Keys in any case gather their values, joined with ','; empty values are dropped."""
        assert query_parameters("a=1&A=2&b=&c&d=x%20y+z") == {"a": "1,2", "d": "x y z"}

    def test_cors_policy(self) -> None:
        """Origins lower-cased and compared exactly; '*' alone allows any origin, without Vary."""
        assert CorsPolicy(("*",)).actual("https://x.example") == {"Access-Control-Allow-Origin": "*"}
        assert CorsPolicy(("https://A.example",)).actual("https://a.example") == {
            "Access-Control-Allow-Origin": "https://a.example"
        }
        assert CorsPolicy(("https://a.example",)).actual("https://A.example") == {}
        assert CorsPolicy(("*", "https://a.example")).actual("https://b.example") == {}
        with pytest.raises(ValueError, match="wildcard"):
            CorsPolicy(("*",), credentials=True)
