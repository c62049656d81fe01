"""``make bench``: what a request costs, measured in one run, written to docs/performance.md.

Everything runs on this machine: an in-memory Azurite, the functions behind the
local host (``python -m tools.devhost``), and the clients. Times are medians
with the interquartile range; where machines differ, the figure that matters is
a ratio of two things measured in the same run.

    python -m tools.bench [--quick] [--import-accounts N] [--only STEP ...] [--output docs/performance.md]

``--quick`` takes fewer samples and a smaller growth table (for a smoke run).
``--only`` runs some figures alone (``--only concurrency``: figures 5, 5b and 8).
``--import-accounts`` sizes the import figure (20,000 to 100,000 is the range
its target is set for; the default is 20,000).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient

from shared.accounts.passwords import HASHING_SLOTS, Argon2Parameters, PasswordHasher
from shared.accounts.store import account_rows, email_row_key, new_user_id, partition_for_email
from shared.tokens.access_tokens import ZUMO_ISSUER, TokenFormat, TokenSettings, issue_token, verify_token
from tools.bench import importer as bench_import
from tools.bench import pinned as bench_pinned
from tools.devhost import host as devhost
from tools.emulators.azurite import PROJECT_ROOT, Azurite, free_port

PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark accounts' password
FUNCTION_MODULES = ("register", "login", "me", "refresh", "logout", "password")


@dataclass(frozen=True)
class Sample:
    """Durations of one thing, in seconds."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        quartiles = statistics.quantiles(self.values, n=4)
        return f"{ms(self.median)} (IQR {ms(quartiles[0])}-{ms(quartiles[2])}, n={len(self.values)})"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def timed(action: Callable[[], object], count: int, *, warmup: int = 3) -> Sample:
    for _ in range(warmup):
        action()
    values = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        values.append(time.perf_counter() - started)
    return Sample(values)


def interleaved(
    actions: dict[str, Callable[[], object]], count: int, *, warmup: int = 3
) -> dict[str, Sample]:
    """Time several things round-robin, so that drift in the machine's speed hits all alike."""
    for _ in range(warmup):
        for action in actions.values():
            action()
    values: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(count):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            values[name].append(time.perf_counter() - started)
    return {name: Sample(series) for name, series in values.items()}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Report:
    lines: list[str]

    def row(self, figure: str, measured: str, target: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "**not met**")
        self.lines.append(f"| {figure} | {measured} | {target} | {verdict} |")

    def table(self, title: str, intro: str = "") -> None:
        self.lines += ["", f"## {title}", ""]
        if intro:
            self.lines += [intro, ""]
        self.lines += ["| figure | measured | target | |", "|---|---|---|---|"]

    def text(self, *paragraphs: str) -> None:
        for paragraph in paragraphs:
            self.lines += ["", paragraph]


class Client:
    """A thin HTTP/1.1 client on one keep-alive connection.

    The load comes from the same machine, so its own cost counts against the
    server's share of the cores: ``http.client`` spends about a third of what
    ``requests`` does per call. Real clients are mobile SDKs elsewhere.
    """

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, route: str, body: dict[str, Any], *, token: str | None = None, expect: int = 200) -> Any:
        headers = {"Content-Type": "application/json"} | ({"X-ZUMO-AUTH": token} if token else {})
        self.connection.request("POST", f"/api/{route}", body=json.dumps(body).encode(), headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status >= 300 and response.status != expect:
            raise RuntimeError(f"{route} answered {response.status}: {payload!r}")
        return json.loads(payload)

    def close(self) -> None:
        self.connection.close()


class App:
    """The local host on its own Azurite, and a client for it."""

    def __init__(
        self,
        azurite: Azurite,
        folder: Path,
        *,
        address_limits: str = "0",
        extra_settings: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        """``cpus``, when given, confines the host process (every thread of it) to those CPUs."""
        self.key = secrets.token_hex(32)
        self.table_name = "Bench" + secrets.token_hex(4)
        self.environment = devhost.app_environment(
            {
                "AUTH_SIGNING_KEY": self.key,
                "ACCOUNTS_STORAGE_CONNECTION": azurite.connection_string,
                "ACCOUNTS_TABLE": self.table_name,
                "PYTHON_THREADPOOL_THREAD_COUNT": "8",
                # All load comes from one loopback address: limits off, or too high to refuse (but counted).
                "AUTH_RATE_LIMIT_REGISTER": address_limits,
                "AUTH_RATE_LIMIT_LOGIN": address_limits,
                "AUTH_RATE_LIMIT_MAIL": address_limits,
                "AUTH_ENCRYPTION_KEY": secrets.token_hex(32),
            }
            | (extra_settings or {})
        )
        settings = folder / "local.settings.json"
        settings.write_text(json.dumps({"Values": {}}))
        self.port = free_port()
        self.process = devhost.spawn(
            self.port,
            settings,
            self.environment,
            cpus=cpus,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = Client(self.port)
        self.azurite_pid = azurite.pid
        self.table = TableClient.from_connection_string(azurite.connection_string, self.table_name)

    def register(self, email: str) -> Any:
        return self.client.post("register", {"email": email, "password": PASSWORD})

    def login(self, email: str, client: Client | None = None) -> Any:
        return (client or self.client).post("login", {"email": email, "password": PASSWORD})

    def memory_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split()[1])
        memory = f", {total_kib / 1024 / 1024:.0f} GiB"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; Azurite (in memory) on the same machine"
    )


def stored_login_hash(app: App) -> str:
    """The stored hash of the bench's login account."""
    entity = app.table.get_entity(
        partition_for_email("login@example.com"), email_row_key("login@example.com")
    )
    return str(entity["PasswordHash"])


def login_and_register_overhead(
    app: App, limited: App, hasher: PasswordHasher, samples: int, report: Report
) -> float:
    """Figures 1 and 2, also with per-address limits on; returns the median Argon2id verification time."""
    app.register("login@example.com")
    limited.register("login@example.com")
    partition = partition_for_email("login@example.com")
    row_key = email_row_key("login@example.com")
    stored_hash = stored_login_hash(app)

    counter = iter(range(10**9))

    def bare_insert() -> None:
        email = f"bare{next(counter)}@example.com"
        partition = partition_for_email(email)
        rows = [
            {"PartitionKey": partition, "RowKey": email_row_key(email), "PasswordHash": stored_hash},
            {"PartitionKey": partition, "RowKey": "user:" + new_user_id(email), "Email": email},
        ]
        app.table.submit_transaction([("create", row) for row in rows])

    measured = interleaved(
        {
            "login": lambda: app.login("login@example.com"),
            "verify": lambda: hasher.verify(stored_hash, PASSWORD),
            "read": lambda: app.table.get_entity(partition, row_key),
            "register": lambda: app.register(f"r{next(counter)}@example.com"),
            "hash": lambda: hasher.hash(PASSWORD),
            "insert": bare_insert,
            "limited login": lambda: limited.login("login@example.com"),
            "limited register": lambda: limited.register(f"r{next(counter)}@example.com"),
        },
        samples,
    )
    login, verify, read = measured["login"], measured["verify"], measured["read"]
    register, hashing, insert = measured["register"], measured["hash"], measured["insert"]
    limited_login, limited_register = measured["limited login"], measured["limited register"]
    login_ratio = login.median / (verify.median + read.median)
    register_ratio = register.median / (hashing.median + insert.median)
    limited_login_ratio = limited_login.median / (verify.median + read.median)
    limited_register_ratio = limited_register.median / (hashing.median + insert.median)

    report.table(
        "1-2. Overhead per login and register",
        "End to end over HTTP through the local host, divided by what the request cannot avoid: "
        "the Argon2id work plus the one storage round trip, both measured bare in the same run.",
    )
    report.row("login, end to end", login.spread())
    report.row("Argon2id verify (bare argon2-cffi)", verify.spread())
    report.row("point read (bare azure-data-tables)", read.spread())
    report.row("**login overhead ratio**", f"{login_ratio:.3f}", "≤ 1.10", login_ratio <= 1.10)
    report.row("register, end to end", register.spread())
    report.row("Argon2id hash (bare argon2-cffi)", hashing.spread())
    report.row("2-row insert transaction (bare azure-data-tables)", insert.spread())
    report.row("**register overhead ratio**", f"{register_ratio:.3f}", "≤ 1.10", register_ratio <= 1.10)
    for name, sample, ratio, verb in [
        ("login", limited_login, limited_login_ratio, "checked"),
        ("register", limited_register, limited_register_ratio, "hashed"),
    ]:
        note = f"the counter is written while the password is {verb}"
        report.row(f"{name}, per-address limits on ({note})", sample.spread())
        report.row(f"**{name} overhead ratio, limits on**", f"{ratio:.3f}", "≤ 1.10", ratio <= 1.10)
    return verify.median


def round_trips(report: Report) -> None:
    """Figure 3, counted in a child process with the storage request counter."""
    script = """
import json, sys
import login, me, register
from shared.storage import storage_requests
from tests.conftest import http_request
def count(call):
    storage_requests.reset(); response = call(); return storage_requests.count, response.status_code
def request(route, body, client=None):
    return http_request("POST", route, body, client=client)
body = {"email": "rt@example.com", "password": sys.argv[1]}
register.main(http_request("POST", "register", {"email": "warm@example.com", "password": sys.argv[1]}))
result = {"register": count(lambda: register.main(http_request("POST", "register", body)))}
response = login.main(http_request("POST", "login", body))
token = json.loads(response.get_body())["token"]
result["login"] = count(lambda: login.main(http_request("POST", "login", body)))
result["me"] = count(lambda: me.main(http_request("GET", "me", token=token)))
calls = [count(lambda: me.main(http_request("GET", "me", token=token)))[0] for _ in range(100)]
result["me, 100 calls within a minute (total)"] = (sum(calls), 200)
import os
from shared import settings, storage
from shared.accounts import service as accounts
os.environ["AUTH_ARGON2_MEMORY_KIB"] = "24576"
settings.reset_settings(); accounts.reset_services(); storage.reset_clients()
login.main(http_request("POST", "login", {"email": "nobody@example.com", "password": sys.argv[1]}))
result["login with re-hash"] = count(lambda: login.main(http_request("POST", "login", body)))
os.environ["AUTH_RATE_LIMIT_REGISTER"] = os.environ["AUTH_RATE_LIMIT_LOGIN"] = "1000/300"
settings.reset_settings(); accounts.reset_services()
limited = {"email": "limited@example.com", "password": sys.argv[1]}
result["register, limits on"] = count(lambda: register.main(request("register", limited, "192.0.2.1")))
result["login, limits on, a new address"] = count(lambda: login.main(request("login", limited, "192.0.2.2")))
same = "the same address"
result["login, limits on, " + same] = count(lambda: login.main(request("login", limited, "192.0.2.2")))
print(json.dumps(result))
"""
    with Azurite() as azurite:
        environment = devhost.app_environment(
            {
                "AUTH_SIGNING_KEY": secrets.token_hex(32),
                "ACCOUNTS_STORAGE_CONNECTION": azurite.connection_string,
                "ACCOUNTS_TABLE": "RoundTrips",
                "AUTH_RATE_LIMIT_REGISTER": "0",
                "AUTH_RATE_LIMIT_LOGIN": "0",
            }
        )
        output = subprocess.run(
            [sys.executable, "-c", script, PASSWORD],
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    counts = json.loads(output)
    report.table(
        "3. Storage round trips per request",
        "Counted exactly: a hook on the Table client counts every HTTP request it sends (retries included). "
        "The test suite asserts the same counts (tests/accounts/test_round_trips.py, "
        "tests/throttling/test_rate_limits.py, tests/sessions/test_device_sessions.py). "
        "Login reads the login row and adds the device session to the "
        "account row; the gate reads the account row, and writes a session's last-seen time at most once "
        "a minute. With per-address limits on, register and login send one more request (the counter), "
        "concurrently with the request's own work.",
    )
    targets = {
        "register": 1,
        "login": 2,
        "me": 1,
        "me, 100 calls within a minute (total)": 100,
        "register, limits on": 2,
        "login, limits on, a new address": 3,
        "login, limits on, the same address": 3,
    }
    for name, (count, status) in counts.items():
        target = targets.get(name)
        met = None if target is None else count == target
        report.row(f"{name} (status {status})", str(count), "" if target is None else str(target), met)


def seed_accounts(table: TableClient, first: int, last: int, stored_hash: str) -> None:
    """Write accounts ``first``..``last``-1 directly, 50 per transaction, as the importer does."""
    by_partition: dict[str, list[dict[str, Any]]] = {}
    created = datetime.now(UTC)
    for number in range(first, last):
        email = f"seed{number}@example.com"
        rows = by_partition.setdefault(partition_for_email(email), [])
        rows.extend(account_rows(new_user_id(email), email, stored_hash, created))
    batches = [rows[i : i + 100] for rows in by_partition.values() for i in range(0, len(rows), 100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda batch: table.submit_transaction([("create", row) for row in batch]), batches))


def growth(app: App, samples: int, sizes: tuple[int, int], report: Report) -> None:
    """Figure 4: login with 1,000 and 50,000 accounts, against the baseline's query by email."""
    stored_hash = app.table.get_entity(
        partition_for_email("login@example.com"), email_row_key("login@example.com")
    )["PasswordHash"]
    results = {}
    seeded = 0
    for size in sizes:
        seed_accounts(app.table, seeded, size, stored_hash)
        seeded = size
        time.sleep(3)  # let the emulator settle after the bulk write
        target = f"seed{size // 2}@example.com"
        login = timed(lambda: app.login(target), samples)  # noqa: B023 - called at once

        def baseline_lookup() -> None:
            # The Mobile Services scripts: find the account by a filter on the email column.
            found = list(app.table.query_entities(f"Email eq '{target}'"))  # noqa: B023 - called at once
            if not found:
                raise RuntimeError("baseline lookup found nothing")

        baseline = timed(baseline_lookup, max(3, samples // 8), warmup=1)
        results[size] = (login, baseline)
    small, large = sizes
    ours = results[large][0].median / results[small][0].median
    theirs = results[large][1].median / results[small][1].median
    report.table(
        "4. Growth with the number of accounts",
        "Login median end to end with the table holding each number of accounts (two rows each). Beside it, "
        "the original design's lookup (a filter query on the email column, bare SDK) on the same table.",
    )
    for size in sizes:
        login, baseline = results[size]
        report.row(f"login, {size:,} accounts", login.spread())
        report.row(f"baseline lookup by email query, {size:,} accounts", baseline.spread())
    report.row(f"**login ratio {large:,} / {small:,}**", f"{ours:.3f}", "≤ 1.10", ours <= 1.10)
    report.row(f"baseline lookup ratio {large:,} / {small:,}", f"{theirs:.1f}")


@dataclass(frozen=True)
class Throughput:
    """Logins per second under a steady load, and where the CPU went, per login."""

    rate: float
    #: CPU seconds per login of the host process (all its threads).
    host_cpu: float
    #: CPU seconds per login of the co-located Azurite and of this process (the clients).
    neighbour_cpu: float


def logins_per_second(app: App, clients: int, duration: float) -> Throughput:
    """Throughput of ``clients`` threads each logging in back to back, after a second of warm-up.

    The client threads inherit the calling thread's CPU affinity. CPU times are
    read at the start and end of the measured window only.
    """
    stop = threading.Event()
    counts = [0] * clients

    def client(index: int) -> None:
        connection = Client(app.port)
        while not stop.is_set():
            app.login("login@example.com", connection)
            counts[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    start_count, started = sum(counts), time.perf_counter()
    host = cpu_seconds(app.process.pid)
    neighbours = cpu_seconds(app.azurite_pid) + time.process_time()
    time.sleep(duration)
    done, elapsed = sum(counts) - start_count, time.perf_counter() - started
    host = cpu_seconds(app.process.pid) - host
    neighbours = cpu_seconds(app.azurite_pid) + time.process_time() - neighbours
    stop.set()
    for thread in threads:
        thread.join()
    logins = max(done, 1)
    return Throughput(done / elapsed, host / logins, neighbours / logins)


CLIENT_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class Concurrency:
    """What figure 5 measured: each client count's share of the all-core limit, and the host's memory."""

    shares: dict[int, float]
    idle_kib: int
    peak_kib: int


def concurrency(app: App, verify_seconds: float, duration: float, report: Report) -> Concurrency:
    """Figure 5: throughput with 1-8 clients, everything sharing all cores, against the all-core limit."""
    cores = os.cpu_count() or 1
    limit = cores / verify_seconds
    idle_kib = app.memory_kib("VmRSS")
    rows = [(clients, logins_per_second(app, clients, duration)) for clients in CLIENT_COUNTS]
    peak_kib = app.memory_kib("VmHWM")
    neighbour_cpu = statistics.median(measured.neighbour_cpu for _, measured in rows)
    adjusted = cores / (verify_seconds + neighbour_cpu)
    report.table(
        "5. Concurrency",
        f"Logins per second through the local host with N concurrent clients, against the hash-bound limit "
        f"(cores / Argon2id verify time = {cores} / {ms(verify_seconds)} = {limit:.1f}/s). Here the clients "
        f"and Azurite run on the same {cores} cores and spent {ms(neighbour_cpu)} of CPU per login between "
        f"them (measured); the limit left for the service is {cores} / ({ms(verify_seconds)} + "
        f"{ms(neighbour_cpu)}) = {adjusted:.1f}/s, shown second.",
    )
    for clients, measured in rows:
        share, adjusted_share = measured.rate / limit, measured.rate / adjusted
        label = f"{clients} client{'s' * (clients > 1)}"
        report.row(
            label,
            f"{measured.rate:.1f}/s ({share:.2f} of the limit; {adjusted_share:.2f} of what is left to "
            "the service)",
            "≥ 0.85 of the limit" if clients >= 4 else "",
            share >= 0.85 if clients >= 4 else None,
        )
    return Concurrency({clients: measured.rate / limit for clients, measured in rows}, idle_kib, peak_kib)


def memory(measured: Concurrency, report: Report) -> None:
    """Figure 8: the host's resident memory before and after figure 5's load."""
    threads = max(CLIENT_COUNTS)
    per_thread = (measured.peak_kib - measured.idle_kib) / 1024 / threads
    report.table(
        "8. Memory",
        "Resident memory of the local host process (the Python worker's equivalent) before and after "
        f"{threads} concurrent clients. At most {HASHING_SLOTS} Argon2 computations run at once "
        "(one per core), but glibc gives each request thread its own malloc arena, which keeps the "
        "Argon2 block after the computation: memory grows by the memory cost once per request thread "
        "that has hashed.",
    )
    report.row("idle, after warm-up", f"{measured.idle_kib / 1024:.1f} MiB")
    report.row(f"peak under {threads} concurrent logins", f"{measured.peak_kib / 1024:.1f} MiB")
    report.row("per request thread", f"{per_thread:.1f} MiB (Argon2 memory cost: 19 MiB)")


def token_verification(samples: int, report: Report) -> None:
    """Figure 6: µs per verify, against PyJWT's own decode of the same token and a bare HMAC-SHA256."""
    import jwt  # noqa: PLC0415 - the bench measures it; the functions import it on first use
    from jwt.algorithms import HMACAlgorithm  # noqa: PLC0415

    from shared.tokens import access_tokens as tokens  # noqa: PLC0415 - for its claim checks alone

    key = secrets.token_bytes(32)
    settings = TokenSettings(TokenFormat.APPSERVICE, (key,), ZUMO_ISSUER, ZUMO_ISSUER, timedelta(hours=1))
    token = issue_token(
        settings, "custom:00benchmarkbenchmark0000", session_version=0, amr=("pwd",), session_id="a" * 22
    ).token
    signing_input = token.rsplit(".", 1)[0].encode()
    claims = jwt.decode(token, key, algorithms=["HS256"], audience=ZUMO_ISSUER, issuer=ZUMO_ISSUER)
    hmac_algorithm = HMACAlgorithm(HMACAlgorithm.SHA256)

    def per_call(action: Callable[[], object]) -> float:
        runs = []
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(samples):
                action()
            runs.append((time.perf_counter() - started) / samples)
        return statistics.median(runs)

    def pyjwt_decode() -> object:
        return jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=ZUMO_ISSUER,
            issuer=ZUMO_ISSUER,
            leeway=60,
            options={"require": ["exp", "iss", "aud", "sub", "iat"]},
        )

    verify_token(settings, token)  # the first call builds the verifier: not what the gate pays per request
    ours = per_call(lambda: verify_token(settings, token))
    floor = per_call(pyjwt_decode)
    parse = per_call(lambda: jwt.get_unverified_header(token))
    key_check = per_call(lambda: hmac_algorithm.prepare_key(key))
    claim_checks = per_call(lambda: tokens._verified(TokenFormat.APPSERVICE, claims))
    bare = per_call(lambda: hmac.new(key, signing_input, hashlib.sha256).digest())
    report.table(
        "6. Token verification",
        f"The gate's token check of a {len(token)}-character token (with `sid`, `amr` and `sv`), against "
        "PyJWT's own `jwt.decode` of the same token with the same checks, and the physical floor, one "
        "HMAC-SHA256. Per call, after the first (which builds the verifier: PyJWT decoder, options and key "
        "ids, once per settings). The rows below PyJWT's decode are parts of it, measured alone.",
    )
    report.row(
        "**verify_token** (PyJWT, then type and range of every claim read)",
        f"{ours * 1e6:.1f} µs",
        "≤ 60 µs",
        ours <= 60e-6,
    )
    report.row("PyJWT `jwt.decode`, same token and checks", f"{floor * 1e6:.1f} µs")
    report.row("verify_token / PyJWT decode", f"{ours / floor:.2f}")
    report.row(
        "of PyJWT's decode: parsing the three segments (`get_unverified_header` does the same parse)",
        f"{parse * 1e6:.1f} µs",
    )
    report.row(
        "of PyJWT's decode: its per-call check that the HMAC key is no PEM/SSH/DER key",
        f"{key_check * 1e6:.1f} µs",
    )
    report.row(
        "ours beyond PyJWT: the type and range checks of the claims read", f"{claim_checks * 1e6:.1f} µs"
    )
    report.row("bare HMAC-SHA256 of the same token", f"{bare * 1e6:.2f} µs")


def cold_start(runs: int, report: Report) -> None:
    """Figure 7: import time of each function module in a fresh interpreter."""

    def import_time(statement: str, bytecode: bool) -> float:
        environment = dict(os.environ)
        if bytecode:
            environment.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(result.stdout)

    def overhead(module: str, *, bytecode: bool = True) -> tuple[float, Sample]:
        """Paired runs (baseline, then the module).

        :returns: the least module time minus the least baseline time (noise only ever adds
            time, so minima estimate the intrinsic cost best), and the paired differences.
        """
        base_statement = "import azure.functions, azure.data.tables"
        for _ in range(2):  # fill the bytecode cache and the OS file cache first
            import_time(f"import {module}", bytecode)
            import_time(base_statement, bytecode)
        pairs = [
            (import_time(f"import {module}", bytecode), import_time(base_statement, bytecode))
            for _ in range(runs)
        ]
        least = min(module_time for module_time, _ in pairs) - min(base_time for _, base_time in pairs)
        return least, Sample([module_time - base_time for module_time, base_time in pairs])

    with tempfile.TemporaryDirectory() as cache:
        os.environ["PYTHONPYCACHEPREFIX"] = cache
        try:
            subprocess.run([sys.executable, "-m", "compileall", "-q", "shared", *FUNCTION_MODULES],
                           cwd=PROJECT_ROOT, check=True, capture_output=True)  # fmt: skip
            base = Sample(
                [import_time("import azure.functions, azure.data.tables", True) for _ in range(runs)]
            )
            report.table(
                "7. Cold start",
                "Import time of each function module in a fresh interpreter, minus that of "
                f"`azure.functions` + `azure.data.tables` alone ({ms(base.median)}), with compiled bytecode "
                f"present, as deployed. {runs} runs each, alternating. The figure is the least module time "
                "minus the least baseline time (noise on a shared machine only ever adds time); the median "
                "of the paired differences follows in brackets.",
            )
            for module in FUNCTION_MODULES:
                least, pairs = overhead(module)
                report.row(
                    f"`{module}` overhead",
                    f"{ms(least)} (paired: {pairs.spread()})",
                    "≤ 30 ms",
                    least <= 0.030,
                )
            least, pairs = overhead("login", bytecode=False)
            report.row(
                "`login` overhead without bytecode (compiled at import)",
                f"{ms(least)} (paired: {pairs.spread()})",
            )
        finally:
            os.environ.pop("PYTHONPYCACHEPREFIX", None)


def argon2_tradeoffs(samples: int, report: Report) -> None:
    """How the Argon2id parameters trade security for login latency and memory."""
    report.table(
        "Argon2id parameters: security against latency",
        "Verify time (single thread) for OWASP-equivalent and stronger settings; "
        "the memory cost is also what each concurrent login holds.",
    )
    for memory, time_cost in ((19_456, 2), (47_104, 1), (12_288, 3), (65_536, 3), (131_072, 4)):
        hasher = PasswordHasher(Argon2Parameters(memory_kib=memory, time_cost=time_cost))
        stored = hasher.hash(PASSWORD)
        verify = timed(lambda: hasher.verify(stored, PASSWORD), samples, warmup=1)  # noqa: B023 - called at once
        default = " (default)" if (memory, time_cost) == (19_456, 2) else ""
        report.row(f"m={memory // 1024} MiB, t={time_cost}, p=1{default}", f"{ms(verify.median)} per login")


def second_factor_cost(app: App, samples: int, report: Report) -> None:
    """Figure 10: login with TOTP (both steps) against login with a password alone."""
    import pyotp  # noqa: PLC0415 - only this figure needs an authenticator app

    app.register("password-only@example.com")
    apps: list[tuple[str, pyotp.TOTP, int]] = []
    for index in range(samples + 3):
        email = f"totp{index}@example.com"
        token = app.register(email)["token"]
        secret = app.client.post("mfa/totp", {"password": PASSWORD}, token=token)["secret"]
        authenticator = pyotp.TOTP(secret)
        step = int(time.time()) // 30
        app.client.post("mfa/totp/confirm", {"code": authenticator.at(step * 30)}, token=token)
        apps.append((email, authenticator, step))
    accounts = iter(apps)

    def with_second_factor() -> None:
        email, authenticator, confirmed_step = next(accounts)
        challenge = app.client.post("login", {"email": email, "password": PASSWORD}, expect=403)
        step = max(confirmed_step + 1, int(time.time()) // 30 - 1)  # the next step the account accepts
        app.client.post("login/mfa", {"mfaToken": challenge["mfaToken"], "code": authenticator.at(step * 30)})

    measured = interleaved(
        {"password": lambda: app.login("password-only@example.com"), "totp": with_second_factor}, samples
    )
    password, both = measured["password"], measured["totp"]
    report.table(
        "10. Login with a second factor",
        "POST /api/login then POST /api/login/mfa with a code from pyotp, against POST /api/login of an "
        "account without one (interleaved; one account per sample, since each code works once).",
    )
    report.row("login, password only", password.spread())
    report.row("login + second step (TOTP)", both.spread())
    report.row("second factor / password only", f"{both.median / password.median:.2f}")


def passkey_cost(azurite: Azurite, samples: int, report: Report) -> None:
    """Figure 12: a passkey sign-in (options, then the assertion) against a password login."""
    from tools.software_authenticator import SoftwareAuthenticator  # noqa: PLC0415 - this figure only

    rp_id = "auth.example.com"
    with running_app(azurite, extra_settings={"AUTH_PASSKEY_RP_ID": rp_id}) as app:
        token = app.register("passkey@example.com")["token"]
        authenticator = SoftwareAuthenticator(f"https://{rp_id}")
        options = app.client.post("passkeys/registration/options", {"password": PASSWORD}, token=token)
        credential = authenticator.create(options)
        app.client.post("passkeys/registration", {"credential": credential}, token=token, expect=201)

        def with_passkey() -> None:
            request = app.client.post("passkeys/authentication/options", {})
            app.client.post("passkeys/authentication", {"credential": authenticator.get(request)})

        measured = interleaved(
            {"password": lambda: app.login("passkey@example.com"), "passkey": with_passkey}, samples
        )
    password, passkey = measured["password"], measured["passkey"]
    report.table(
        "12. Sign-in with a passkey",
        "POST /api/passkeys/authentication/options then POST /api/passkeys/authentication with an "
        "assertion from a software authenticator (P-256), against POST /api/login of the same account "
        "(interleaved). The passkey sign-in verifies an ECDSA signature instead of an Argon2id hash, "
        "and writes its challenge row, deletes it, and writes the credential's counter.",
    )
    report.row("login, password", password.spread())
    report.row("sign-in, passkey (options + assertion)", passkey.spread())
    report.row("passkey / password", f"{passkey.median / password.median:.2f}")


def forgot_cost(azurite: Azurite, samples: int, report: Report) -> None:
    """Figure 9: forgot for an existing and an unknown email, and against a bare queue put."""
    from aiosmtpd.controller import Controller  # noqa: PLC0415 - a development dependency
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy  # noqa: PLC0415

    class Discard:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            return "250 OK"

    smtp_port = free_port()
    smtp = Controller(Discard(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    queue_name = "bench-mail-" + secrets.token_hex(4)
    mail = {
        "AzureWebJobsStorage": azurite.storage_connection_string,
        "AUTH_MAIL_QUEUE": queue_name,
        "AUTH_MAIL_SMTP_HOST": "127.0.0.1",
        "AUTH_MAIL_SMTP_PORT": str(smtp_port),
        "AUTH_MAIL_SMTP_SECURITY": "none",
        "AUTH_MAIL_FROM": "no-reply@example.com",
    }
    bare_queue = QueueClient.from_connection_string(
        azurite.storage_connection_string,
        queue_name + "-bare",
        message_encode_policy=TextBase64EncodePolicy(),
    )
    bare_queue.create_queue()
    try:
        with running_app(azurite, extra_settings=mail) as app:
            app.register("known@example.com")
            measured = interleaved(
                {
                    "known": lambda: app.client.post("password/forgot", {"email": "known@example.com"}),
                    "unknown": lambda: app.client.post("password/forgot", {"email": "unknown@example.com"}),
                    "put": lambda: bare_queue.send_message(
                        '{"kind":"password_reset","email":"a@example.com"}'
                    ),
                },
                samples,
            )
    finally:
        smtp.stop()
        bare_queue.delete_queue()
    known, unknown, put = measured["known"], measured["unknown"], measured["put"]
    ratio = known.median / unknown.median
    overhead = known.median / put.median
    report.table(
        "9. Password reset requests",
        "POST /api/password/forgot over HTTP for an email with an account and one without (interleaved), "
        "and a bare azure-storage-queue put of the same size. The HTTP function only queues; the mail "
        "function, running in the same host, reads the account and sends meanwhile.",
    )
    report.row("forgot, existing email", known.spread())
    report.row("forgot, unknown email", unknown.spread())
    report.row("**existing / unknown, ratio of medians**", f"{ratio:.3f}", "0.90-1.10", 0.90 <= ratio <= 1.10)
    report.row("bare queue put (azure-storage-queue)", put.spread())
    report.row("forgot / bare queue put", f"{overhead:.2f}")


@contextmanager
def running_app(
    azurite: Azurite, address_limits: str = "0", extra_settings: dict[str, str] | None = None
) -> Iterator[App]:
    with tempfile.TemporaryDirectory() as folder:
        app = App(azurite, Path(folder), address_limits=address_limits, extra_settings=extra_settings)
        try:
            yield app
        finally:
            app.stop()


#: The figures ``--only`` can pick, in the order they run.
STEPS = (
    "overhead",
    "concurrency",
    "growth",
    "reset",
    "mfa",
    "passkeys",
    "round-trips",
    "tokens",
    "cold-start",
    "import",
)
#: The steps that need the shared Azurite and local host.
APP_STEPS = frozenset({"overhead", "concurrency", "growth", "reset", "mfa", "passkeys"})


def app_figures(wanted: set[str], quick: bool, report: Report) -> None:
    """The figures measured through the local host on a shared Azurite (those of :data:`APP_STEPS`)."""
    samples = 15 if quick else 60
    hasher = PasswordHasher(Argon2Parameters())
    with Azurite(all_services=True) as azurite, running_app(azurite) as app:
        if "overhead" in wanted:
            print("1-2. login and register overhead", file=sys.stderr)
            with running_app(azurite, "1000000/300") as limited:
                verify_seconds = login_and_register_overhead(app, limited, hasher, samples, report)
        else:
            app.register("login@example.com")
            login_hash = stored_login_hash(app)
            verify_seconds = timed(lambda: hasher.verify(login_hash, PASSWORD), samples, warmup=1).median
        if "concurrency" in wanted:
            print("5, 8. concurrency and memory", file=sys.stderr)
            duration = 3.0 if quick else 8.0
            measured = concurrency(app, verify_seconds, duration, report)
            print("5b. concurrency, pinned", file=sys.stderr)
            login_hash = stored_login_hash(app)
            bench_pinned.pinned_concurrency(
                lambda: hasher.verify(login_hash, PASSWORD),
                measured.shares,
                report,
                duration=duration,
                samples=samples,
            )
            memory(measured, report)
        if "growth" in wanted:
            print("4. growth", file=sys.stderr)
            growth(app, samples, (1_000, 5_000) if quick else (1_000, 50_000), report)
        if "reset" in wanted:
            print("9. password reset requests", file=sys.stderr)
            forgot_cost(azurite, samples, report)
        if "mfa" in wanted:
            print("10. login with a second factor", file=sys.stderr)
            second_factor_cost(app, samples, report)
        if "passkeys" in wanted:
            print("12. sign-in with a passkey", file=sys.stderr)
            passkey_cost(azurite, samples, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and a smaller growth table")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs" / "performance.md")
    parser.add_argument(
        "--import-accounts", type=int, help="accounts in the import figure (default 20,000; quick 5,000)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=STEPS,
        help="run only this figure (repeatable; default: all). 'concurrency' is figures 5, 5b and 8; "
        "'cold-start' includes the Argon2id parameter table",
    )
    args = parser.parse_args(argv)
    wanted = set(args.only or STEPS)

    report = Report(
        [
            "# Performance",
            "",
            f"Measured by `make bench` on {datetime.now(UTC):%Y-%m-%d} — {machine()}.",
            "",
            "Settings: Argon2id m=19 MiB, t=2, p=1 (the defaults); HS256 tokens; the local host serving "
            "requests from a thread pool like the Functions Python worker.",
        ]
    )
    if args.only:
        report.text(f"Partial run: only {', '.join(step for step in STEPS if step in wanted)}.")
    if wanted & APP_STEPS:
        app_figures(wanted, args.quick, report)
    if "round-trips" in wanted:
        print("3. round trips", file=sys.stderr)
        round_trips(report)
    if "tokens" in wanted:
        print("6. token verification", file=sys.stderr)
        token_verification(2_000 if args.quick else 20_000, report)
    if "cold-start" in wanted:
        print("7. cold start", file=sys.stderr)
        cold_start(5 if args.quick else 15, report)
        argon2_tradeoffs(5 if args.quick else 15, report)
    if "import" in wanted:
        print("11. import", file=sys.stderr)
        bench_import.report_import(
            report,
            args.import_accounts or (5_000 if args.quick else 20_000),
            100_000 if args.quick else 1_000_000,
            len(os.sched_getaffinity(0)),
        )

    text = "\n".join(report.lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
