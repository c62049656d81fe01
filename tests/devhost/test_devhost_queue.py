"""Queue-triggered functions in the local host, as the Functions host runs them, on a real Azurite.

Each host here serves a throwaway function app written to a temporary folder;
its functions record what they receive as JSON lines in ``records.jsonl``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from tests.devhost.apps import RECORDING, ThrowawayApp, never_imported, wait_until, write_app
from tools.devhost import host as devhost
from tools.devhost.app_settings import FunctionIndexingError, resolve_setting_tokens
from tools.devhost.queue_trigger import (
    QueueConnection,
    QueueFunction,
    QueueListener,
    QueuesOptions,
    QueueTrigger,
    RandomizedExponentialBackoff,
    decode_body,
    normalize_queue_name,
    parse_timespan,
    poison_queue_name,
    resolve_connection,
    service_client,
)
from tools.emulators.azurite import ACCOUNT_NAME, Azurite, wait_for_port

#: The port's pass of `make test` runs these again, through the local host's own loader.
pytestmark = pytest.mark.through_host


#: Every queue function of the test apps: records each invocation; sleeps or raises on request.
FUNCTION_SOURCE = (
    RECORDING
    + """

def main(msg: func.QueueMessage, context: func.Context) -> None:
    body = msg.get_body().decode("utf-8")
    with _invocation() as running:
        _record(
            event="start",
            function=context.function_name,
            invocation_id=context.invocation_id,
            running=running,
            id=msg.id,
            body=body,
            dequeue_count=msg.dequeue_count,
            pop_receipt=msg.pop_receipt,
            insertion_time=msg.insertion_time.isoformat(),
            expiration_time=msg.expiration_time.isoformat(),
            time_next_visible=msg.time_next_visible.isoformat(),
        )
        if body.startswith("sleep:"):
            time.sleep(float(body.removeprefix("sleep:").split()[0]))
        if body.startswith("fail"):
            raise RuntimeError("failing on purpose")
        _record(event="end", function=context.function_name, body=body)
"""
)

HTTP_SOURCE = """
import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
"""

#: A function that must never be imported: it leaves a mark if it is.
MARKING_SOURCE = never_imported("msg")


def queue_binding(queue_name: str, **extra: str) -> dict[str, Any]:
    """A function.json with a queue trigger on ``queue_name``."""
    binding = {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": queue_name}
    return {"scriptFile": "__init__.py", "bindings": [binding | extra]}


HTTP_BINDING = {
    "bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous", "route": "ping"},
        {"type": "http", "direction": "out", "name": "$return"},
    ]
}


def token() -> str:
    return secrets.token_hex(4)


@dataclass
class QueueApp(ThrowawayApp):
    """A throwaway function app served by ``python -m tools.devhost`` on the shared Azurite."""

    connection_string: str = ""
    started: float = 0.0
    queue_name: str = ""

    @classmethod
    def write(
        cls, root: Path, azurite: Azurite, host_json: dict[str, Any], functions: dict[str, tuple[Any, str]]
    ) -> QueueApp:
        """Write ``host.json`` and each function folder (``name: (function.json, source)``)."""
        write_app(root, host_json, {"Values": {}}, functions)
        return cls(root, connection_string=azurite.storage_connection_string)

    def start(self, settings: dict[str, str]) -> QueueApp:
        """Start the host with these app settings (and AzureWebJobsStorage) in its environment."""
        self.spawn(devhost.app_environment({"AzureWebJobsStorage": self.connection_string} | settings))
        self.started = time.monotonic()
        return self

    def queue(self, name: str, *, encoded: bool = True) -> QueueClient:
        """A client of queue ``name``, encoding to Base64 as the host expects by default, or not."""
        policy = TextBase64EncodePolicy() if encoded else None
        return QueueClient.from_connection_string(self.connection_string, name, message_encode_policy=policy)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=10)


def queue_length(queue: QueueClient) -> int:
    """Messages in ``queue``, visible or not."""
    return int(queue.get_queue_properties().approximate_message_count or 0)


def poisoned(app: QueueApp, queue_name: str) -> list[str]:
    """The content, as stored, of the messages in ``queue_name``'s poison queue."""
    poison = app.queue(queue_name + "-poison", encoded=False)
    try:
        return [message.content for message in poison.peek_messages(max_messages=32)]
    except ResourceNotFoundError:  # not created yet
        return []


@pytest.fixture(scope="module")
def queue_azurite(azurite: Azurite) -> Azurite:
    """The shared Azurite, once its Queue service answers too."""
    wait_for_port(azurite.queue_port)
    return azurite


class Names:
    """Queue names of the module's main app, unique to this run."""

    record = f"record-{token()}"
    flaky = f"flaky-{token()}"
    batch = f"batch-{token()}"
    idle = f"idle-{token()}"


@pytest.fixture(scope="module")
def app(queue_azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueApp]:
    """An app with an HTTP function and queue functions; polls at most every second."""
    host_json = {
        "version": "2.0",
        "extensions": {
            "queues": {
                "maxPollingInterval": "00:00:01",
                "visibilityTimeout": "00:00:01",
                "batchSize": 2,
                "newBatchThreshold": 0,
                "maxDequeueCount": 3,
            }
        },
    }
    functions = {
        "ping": (HTTP_BINDING, HTTP_SOURCE),
        "record": (queue_binding("%RECORD_QUEUE%", connection="RecordStorage"), FUNCTION_SOURCE),
        "flaky": (queue_binding(Names.flaky.replace("flaky", "Flaky")), FUNCTION_SOURCE),
        "batch": (queue_binding(Names.batch), FUNCTION_SOURCE),
        "idle": (queue_binding(Names.idle), FUNCTION_SOURCE),
        "unresolved": (queue_binding("%NOT_SET_ANYWHERE%"), MARKING_SOURCE),
    }
    queue_app = QueueApp.write(tmp_path_factory.mktemp("app"), queue_azurite, host_json, functions)
    for name in (Names.record, Names.flaky, Names.batch, Names.idle):
        queue_app.queue(name).create_queue()
    queue_app.start(
        {"RECORD_QUEUE": Names.record.upper(), "RecordStorage": queue_azurite.storage_connection_string}
    )
    yield queue_app
    assert queue_app.stop() == 0


class TestQueueTrigger:
    """What a queue-triggered function sees, and what becomes of its messages."""

    def test_base64_message_and_its_metadata(self, app: QueueApp) -> None:
        """The body is Base64-decoded; id, dequeue count, times and pop receipt come with it."""
        queue = app.queue(Names.record)
        sent = queue.send_message('héllo {"a": 1}')
        record = wait_until(lambda: app.records("record"), 10, "the record function")[0]
        assert record["body"] == 'héllo {"a": 1}'
        assert record["id"] == sent.id
        assert record["dequeue_count"] == 1
        assert record["pop_receipt"]
        assert datetime.fromisoformat(record["insertion_time"]) == sent.inserted_on
        assert datetime.fromisoformat(record["expiration_time"]) == sent.expires_on
        visible = datetime.fromisoformat(record["time_next_visible"])
        assert 9 * 60 < (visible - sent.inserted_on).total_seconds() <= 11 * 60  # received for 10 minutes
        wait_until(lambda: queue_length(queue) == 0, 10, "the message's deletion")
        invocation = record["invocation_id"]
        assert uuid.UUID(invocation)
        wait_until(lambda: "record -> Succeeded" in app.log, 5, "the invocation's log line")
        line = next(line for line in app.log.splitlines() if invocation in line)
        assert f"queue {Names.record} record -> Succeeded (" in line
        assert f"message_id={sent.id} dequeue_count=1" in line

    def test_queue_name_and_connection_from_app_settings(self, app: QueueApp) -> None:
        """``%RECORD_QUEUE%`` resolves (lower-cased) and ``RecordStorage`` names the connection."""
        assert f"record: queueTrigger {Names.record} (connection RecordStorage)" in app.log

    def test_unresolved_setting_refuses_only_that_function(self, app: QueueApp) -> None:
        """The host logs the unresolved setting, never loads the function, and still serves HTTP."""
        assert (
            "The 'unresolved' function is in error: '%NOT_SET_ANYWHERE%' does not resolve to a value."
            in app.log
        )
        assert not (app.root / "imported").exists()
        response = app.get("/api/ping")
        assert (response.status_code, response.text) == (200, "pong")

    def test_failing_message_is_retried_then_poisoned(self, app: QueueApp) -> None:
        """Released for visibilityTimeout after each failure; poisoned as sent at maxDequeueCount."""
        queue = app.queue(Names.flaky)
        queue.send_message("fail-1")
        stored = base64.b64encode(b"fail-1").decode()
        assert wait_until(lambda: poisoned(app, Names.flaky), 30, "the poison queue") == [stored]
        assert [record["dequeue_count"] for record in app.records("flaky")] == [1, 2, 3]
        # The extension copies the message to the poison queue, then deletes it from its own queue.
        assert wait_until(lambda: queue_length(queue) == 0, 10, "the message to leave its queue")
        assert "RuntimeError: failing on purpose" in app.log
        assert "Traceback" in app.log
        assert f"has reached MaxDequeueCount of 3. Moving message to queue '{Names.flaky}-poison'" in app.log

    def test_message_that_is_not_base64_is_poisoned_unrun(self, app: QueueApp) -> None:
        """As the extension does: straight to the poison queue, content intact, function not called."""
        app.queue(Names.record, encoded=False).send_message("not base64!")
        assert wait_until(lambda: poisoned(app, Names.record), 10, "the poison queue") == ["not base64!"]
        assert "is not Base64" in app.log
        assert all(record["body"] != "not base64!" for record in app.records("record"))

    def test_batch_size_bounds_concurrency(self, app: QueueApp) -> None:
        """batchSize 2 and newBatchThreshold 0: two at a time, never more."""
        queue = app.queue(Names.batch)
        for n in range(4):
            queue.send_message(f"sleep:0.8 #{n}", visibility_timeout=1)  # all visible at once

        def all_done() -> list[dict[str, Any]] | None:
            return app.records("batch") if len(app.records("batch", "end")) == 4 else None

        records = wait_until(all_done, 20, "four invocations")
        assert max(record["running"] for record in records) == 2

    def test_idle_queue_is_polled_within_max_polling_interval(self, app: QueueApp) -> None:
        """After the back-off reached maxPollingInterval (1 s), a message still runs within it."""
        idle_for = 3.0 - (time.monotonic() - app.started)
        if idle_for > 0:
            time.sleep(idle_for)  # let the back-off grow to its maximum
        app.queue(Names.idle).send_message("wake up")
        wait_until(lambda: app.records("idle"), 1.0 + 2.0, "the idle function")


@pytest.fixture(scope="module")
def plain_app(queue_azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueApp]:
    """An app whose host.json says base64, 5 dequeues, and routePrefix api; app settings override."""
    host_json = {
        "version": "2.0",
        "extensions": {
            "http": {"routePrefix": "api"},
            "queues": {
                "maxPollingInterval": "00:00:01",
                "visibilityTimeout": "00:10:00",
                "maxDequeueCount": 5,
                "messageEncoding": "base64",
            },
        },
    }
    functions = {
        "ping": (HTTP_BINDING, HTTP_SOURCE),
        "plain": (queue_binding("%PLAIN_QUEUE%"), FUNCTION_SOURCE),
    }
    queue_app = QueueApp.write(tmp_path_factory.mktemp("plain"), queue_azurite, host_json, functions)
    queue_name = f"plain-{token()}"
    queue_app.queue(queue_name).create_queue()
    queue_app.start(
        {
            "PLAIN_QUEUE": queue_name,
            "AzureFunctionsJobHost__extensions__queues__messageEncoding": "none",
            "AzureFunctionsJobHost__Extensions__Queues__MaxDequeueCount": "1",
            "AzureFunctionsJobHost__extensions__http__routePrefix": "custom",
        }
    )
    queue_app.queue_name = queue_name
    yield queue_app
    assert queue_app.stop() == 0


class TestHostJsonOverrides:
    """``AzureFunctionsJobHost__...`` app settings override host.json, as in the Functions host."""

    def test_message_encoding_none(self, plain_app: QueueApp) -> None:
        """messageEncoding none (from the override): the function gets the text as stored."""
        text = "plain <text> & ünïcode"
        plain_app.queue(plain_app.queue_name, encoded=False).send_message(text)
        records = wait_until(lambda: plain_app.records("plain"), 10, "the plain function")
        assert records[0]["body"] == text

    def test_max_dequeue_count_override(self, plain_app: QueueApp) -> None:
        """maxDequeueCount 1 (from the override): poisoned after the first failure."""
        name = plain_app.queue_name
        plain_app.queue(name, encoded=False).send_message("fail once")
        assert wait_until(lambda: poisoned(plain_app, name), 10, "the poison queue") == ["fail once"]
        failures = [r for r in plain_app.records("plain") if r["body"] == "fail once"]
        assert [record["dequeue_count"] for record in failures] == [1]

    def test_route_prefix_override(self, plain_app: QueueApp) -> None:
        """extensions.http.routePrefix from the override."""
        assert plain_app.get("/custom/ping").status_code == 200
        assert plain_app.get("/api/ping").status_code == 404


def test_shutdown_lets_invocations_in_flight_finish(queue_azurite: Azurite, tmp_path: Path) -> None:
    """On SIGTERM the host stops polling, waits for the running function, deletes its message."""
    name = f"stop-{token()}"
    host_json = {"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:01"}}}
    queue_app = QueueApp.write(
        tmp_path, queue_azurite, host_json, {"slow": (queue_binding(name), FUNCTION_SOURCE)}
    )
    queue = queue_app.queue(name)
    queue.create_queue()
    queue_app.start({})
    try:
        queue.send_message("sleep:1.5")
        wait_until(lambda: queue_app.records("slow"), 10, "the slow function to start")
    finally:
        status = queue_app.stop()
    assert status == 0
    assert len(queue_app.records("slow", "end")) == 1
    assert queue_length(queue) == 0


def test_visibility_is_renewed_while_the_function_runs(queue_azurite: Azurite) -> None:
    """A function outliving the receive visibility keeps its message: it is not delivered twice."""
    name = f"renew-{token()}"
    queue = QueueClient.from_connection_string(
        queue_azurite.storage_connection_string, name, message_encode_policy=TextBase64EncodePolicy()
    )
    queue.create_queue()
    started = threading.Event()
    calls: list[int | None] = []

    def slow(message: func.QueueMessage, invocation_id: str) -> None:
        calls.append(message.dequeue_count)
        started.set()
        time.sleep(3)

    trigger = QueueTrigger("slow", "msg", name, QueueConnection("AzureWebJobsStorage"))
    options = QueuesOptions(batch_size=1, new_batch_threshold=1, max_polling_interval=0.2)
    listener = QueueListener(QueueFunction(trigger, slow), queue, None, options, message_visibility=2)
    listener.start()
    try:
        queue.send_message("x")
        assert started.wait(10)
    finally:
        drained = listener.stop(timeout=10)
    assert drained
    assert calls == [1]
    assert queue_length(queue) == 0
    queue.delete_queue()


class TestBackoff:
    """RandomizedExponentialBackoffStrategy, with its randomness pinned or not."""

    def test_grows_to_the_maximum_and_stays(self) -> None:
        """Without messages: min, then min + delta * 2**(n-1), capped at the maximum."""
        backoff = RandomizedExponentialBackoff(0.1, 1.0, rng=lambda: 0.5)
        delays = [backoff.next_delay(False) for _ in range(8)]
        assert delays == pytest.approx([0.1, 0.2, 0.3, 0.5, 0.9, 1.0, 1.0, 1.0])

    def test_message_resets_to_the_minimum(self) -> None:
        """After a message the delay is the minimum again, then grows from its second step."""
        backoff = RandomizedExponentialBackoff(0.1, 1.0, rng=lambda: 0.5)
        for _ in range(10):
            backoff.next_delay(False)
        assert backoff.next_delay(True) == pytest.approx(0.1)
        assert backoff.next_delay(False) == pytest.approx(0.2)
        assert backoff.next_delay(False) == pytest.approx(0.3)

    def test_randomized_within_twenty_percent(self) -> None:
        """Each step adds delta * 2**(n-1) * [0.8, 1.2) until it reaches maxPollingInterval."""
        backoff = RandomizedExponentialBackoff(0.1, 60.0)
        delays = [backoff.next_delay(False) for _ in range(20)]
        assert delays[0] == 0.1
        for n, (before, after) in enumerate(itertools.pairwise(delays), start=1):
            if after == 60.0:
                continue
            step = 0.1 * 2 ** (n - 1)
            assert 0.8 * step <= after - 0.1 < 1.2 * step
            assert after > before
        assert delays[-3:] == [60.0, 60.0, 60.0]

    def test_rejects_a_minimum_above_the_maximum(self) -> None:
        """As the strategy's constructor: the minimum must not exceed the maximum."""
        with pytest.raises(ValueError, match="minimum"):
            RandomizedExponentialBackoff(2.0, 1.0)


CONNECTION_STRING = (
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
)


class TestConnections:
    """A binding's ``connection`` resolved from app settings as the host resolves it."""

    def test_default_is_azure_web_jobs_storage(self) -> None:
        """No connection (or AzureWebJobsStorage itself) is the AzureWebJobsStorage setting."""
        resolved = resolve_connection(None, {"AzureWebJobsStorage": CONNECTION_STRING})
        assert (resolved.setting, resolved.connection_string) == ("AzureWebJobsStorage", CONNECTION_STRING)
        assert (
            resolve_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": CONNECTION_STRING}) == resolved
        )

    def test_prefixed_name_first_then_the_name(self) -> None:
        """AzureWebJobs<name> wins over <name>; names compare in any case; %setting% resolves."""
        both = {"AzureWebJobsMine": CONNECTION_STRING, "Mine": "UseDevelopmentStorage=true"}
        assert resolve_connection("Mine", both).setting == "AzureWebJobsMine"
        assert resolve_connection("Mine", {"Mine": CONNECTION_STRING}).setting == "Mine"
        assert resolve_connection("Mine", {"mine": CONNECTION_STRING}).setting == "Mine"  # any case
        assert resolve_connection("%WHICH%", {"WHICH": "Mine", "Mine": CONNECTION_STRING}).setting == "Mine"

    def test_development_storage(self) -> None:
        """UseDevelopmentStorage=true is Azurite's well-known account on 127.0.0.1:10001."""
        resolved = resolve_connection(None, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
        client = service_client(resolved)
        assert client.url == f"http://127.0.0.1:10001/{ACCOUNT_NAME}/"
        assert client.account_name == ACCOUNT_NAME

    def test_account_name_identity(self) -> None:
        """<name>__accountName: the account's queue endpoint with DefaultAzureCredential."""
        environ = {"Mine__accountName": "acct", "Mine__clientId": "1234"}
        resolved = resolve_connection("Mine", environ)
        assert resolved == QueueConnection(
            "Mine", service_uri="https://acct.queue.core.windows.net", client_id="1234"
        )
        client = service_client(resolved)
        assert client.url == "https://acct.queue.core.windows.net/"
        assert isinstance(client.credential, DefaultAzureCredential)

    def test_queue_service_uri_identity(self) -> None:
        """<name>__queueServiceUri with credential=managedidentity: a managed identity."""
        environ = {
            "AzureWebJobsStorage__queueServiceUri": "https://q.example/",
            "AzureWebJobsStorage__credential": "managedidentity",
        }
        resolved = resolve_connection(None, environ)
        assert (resolved.service_uri, resolved.credential) == ("https://q.example/", "managedidentity")
        assert isinstance(service_client(resolved).credential, ManagedIdentityCredential)

    def test_account_name_wins_over_queue_service_uri_and_service_uri_is_an_alias(self) -> None:
        """As StorageClientProvider.TryGetServiceUri: accountName, then queueServiceUri, then serviceUri."""
        both = {"C__queueServiceUri": "https://q.example", "C__accountName": "acct"}
        assert resolve_connection("C", both).service_uri == "https://acct.queue.core.windows.net"
        assert (
            resolve_connection("C", {"C__serviceUri": "https://s.example"}).service_uri == "https://s.example"
        )

    def test_missing_connection_names_the_setting(self) -> None:
        """The host's error names the prefixed setting it looked for."""
        with pytest.raises(FunctionIndexingError, match="'AzureWebJobsMine' does not exist"):
            resolve_connection("Mine", {"Other": CONNECTION_STRING})

    def test_section_without_an_endpoint(self) -> None:
        """Identity settings without an endpoint are an error, not a guess."""
        with pytest.raises(FunctionIndexingError, match="neither a connection string"):
            resolve_connection("Mine", {"Mine__clientId": "1234"})

    def test_secrets_stay_out_of_the_repr(self) -> None:
        """Connection strings (account keys) never show in a repr or log line."""
        resolved = resolve_connection(None, {"AzureWebJobsStorage": CONNECTION_STRING})
        assert "a2V5" not in repr(resolved)


class TestSettings:
    """host.json values and app settings, read as the Functions host reads them."""

    def test_queues_defaults(self) -> None:
        """Consumption plan in production: the extension's defaults."""
        options = QueuesOptions.from_settings(
            {}, {"AZURE_FUNCTIONS_ENVIRONMENT": "Production", "WEBSITE_SKU": "Dynamic"}
        )
        assert options == QueuesOptions(16, 8, 60.0, 0.0, 5, "base64")

    def test_new_batch_threshold_scales_with_processors(self) -> None:
        """Off the Consumption plan it is batchSize / 2 per processor."""
        options = QueuesOptions.from_settings({"batchSize": 5}, {"AZURE_FUNCTIONS_ENVIRONMENT": "Production"})
        assert options.new_batch_threshold == 2 * (os.cpu_count() or 1)

    def test_development_polls_every_two_seconds_by_default(self) -> None:
        """func start sets AZURE_FUNCTIONS_ENVIRONMENT=Development: a default 1 minute becomes 2 s."""
        assert QueuesOptions.from_settings({}, {}).max_polling_interval == 2.0
        assert QueuesOptions.from_settings({"maxPollingInterval": "00:00:05"}, {}).max_polling_interval == 5.0

    def test_values_in_any_case(self) -> None:
        """Keys in any case, strings for numbers and intervals, as configuration binds them."""
        options = QueuesOptions.from_settings(
            {"BatchSize": "4", "VISIBILITYTIMEOUT": "00:00:30", "messageEncoding": "None"}, {}
        )
        assert (options.batch_size, options.visibility_timeout, options.message_encoding) == (4, 30.0, "none")

    @pytest.mark.parametrize(
        "section",
        [
            {"batchSize": 33},
            {"batchSize": 0},
            {"maxDequeueCount": 0},
            {"maxPollingInterval": 50},
            {"messageEncoding": "utf8"},
        ],
    )
    def test_rejects_what_the_extension_rejects(self, section: dict[str, Any]) -> None:
        """Out-of-range values fail the host's start, as the options' setters throw."""
        with pytest.raises(
            ValueError, match=r"(?i)batchSize|MaxDequeueCount|MaxPollingInterval|messageEncoding"
        ):
            QueuesOptions.from_settings(section, {})

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("00:00:02", 2.0),
            ("00:01", 60.0),
            ("1.02:00:00", 93600.0),
            ("00:00:01.5", 1.5),
            (2000, 2.0),
            ("1500", 1.5),
        ],
    )
    def test_timespans_and_milliseconds(self, value: object, seconds: float) -> None:
        """TimeSpan strings as .NET parses them; numbers and digit strings as milliseconds."""
        assert parse_timespan(value) == seconds

    @pytest.mark.parametrize("value", ["2s", "", True, "1:2:3:4"])
    def test_not_an_interval(self, value: object) -> None:
        """Anything but a TimeSpan or a number of milliseconds."""
        with pytest.raises(ValueError, match="not an interval"):
            parse_timespan(value)

    def test_host_json_overrides(self, tmp_path: Path) -> None:
        """AzureFunctionsJobHost__a__b overrides a.b, in any case; the rest of the file stays."""
        document = {
            "extensions": {"queues": {"batchSize": 8, "maxDequeueCount": 2}, "http": {"routePrefix": "x"}}
        }
        (tmp_path / "host.json").write_text(json.dumps(document))
        environ = {"azurefunctionsjobhost__EXTENSIONS__queues__batchSize": "3", "Unrelated": "1"}
        host = devhost.HostJson.load(tmp_path, environ)
        assert host.section("Extensions", "Queues") == {"batchsize": "3", "maxdequeuecount": 2}
        assert devhost.route_prefix(tmp_path, environ) == "x"
        assert (
            devhost.route_prefix(tmp_path, {"AzureFunctionsJobHost__extensions__http__routePrefix": ""}) == ""
        )
        assert devhost.route_prefix(tmp_path / "nowhere", {}) == "api"

    def test_setting_tokens(self) -> None:
        """%name% anywhere in the string; A:B is the app setting A__B; undefined names fail."""
        environ = {"ENV": "prod", "Queues__Orders": "orders"}
        assert resolve_setting_tokens("in-%ENV%-%Queues:Orders%", environ) == "in-prod-orders"
        with pytest.raises(FunctionIndexingError, match=r"^'%MISSING%' does not resolve to a value\.$"):
            resolve_setting_tokens("%MISSING%", environ)
        with pytest.raises(FunctionIndexingError, match="does not have a closing"):
            resolve_setting_tokens("a%ENV", environ)

    def test_bodies(self) -> None:
        """Base64 may hold white space (as .NET reads it); none is the text as UTF-8."""
        assert decode_body("aMOp\nbGxv ", "base64") == "héllo".encode()
        assert decode_body("héllo", "none") == "héllo".encode()
        with pytest.raises(ValueError, match="not Base64"):
            decode_body("héllo", "base64")

    def test_queue_names(self) -> None:
        """Lower-cased and validated; the poison queue only where the suffix fits."""
        assert normalize_queue_name("Orders-In") == "orders-in"
        for bad in ("ab", "a--b", "-ab", "ab-", "a_b", "a" * 64):
            with pytest.raises(FunctionIndexingError, match="Invalid queue name"):
                normalize_queue_name(bad)
        assert poison_queue_name("orders") == "orders-poison"
        assert poison_queue_name("orders-poison") is None
        assert poison_queue_name("a" * 60) is None
