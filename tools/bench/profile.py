"""``make bench --only profile``: where the CPU of a request goes beyond the hash.

The function modules are called in a child process (as the Functions worker
calls them, without the HTTP server) against Azurite, each call under
:mod:`cProfile` with the calling thread's CPU clock. Self time is summed by
where the code lives (Argon2id, azure-core, the Tables SDK, ``requests``,
``urllib3``, the standard library's HTTP and sockets, JSON, logging, ours...),
per request.

cProfile (on ``sys.monitoring`` since Python 3.12) sees every thread's calls but
times them with one clock, so work on another thread would be charged to
whatever the calling thread was waiting in. The script therefore runs
``concurrent.futures`` pools inline, on the calling thread: azure-core starts a
fresh pool for every batch (entity-group) request, to prepare its parts and
again to read the answer. The threads a request would have started are counted
instead, and what one costs is measured apart.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from tools.bench.app import PASSWORD, app_environment, run_script
from tools.bench.measuring import ms
from tools.bench.report import Report
from tools.emulators.azurite import Azurite

#: The routes profiled, in the order of the table.
ROUTES = ("login", "register", "gate (GET /api/me)", "login/mfa")

_SCRIPT = r"""
import cProfile, concurrent.futures, json, pstats, sys, threading, time
import pyotp

class InlineExecutor(concurrent.futures.Executor):
    # What a pool's thread would run, run on the calling thread (see the module's docstring).
    def __init__(self, *args, **kwargs):
        pass

    def submit(self, fn, /, *args, **kwargs):
        threads_started[0] += 1  # the pool would have started a thread for it (one per task, at most)
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future

threads_started = [0]
real_start = threading.Thread.start

def counted_start(thread):
    threads_started[0] += 1
    real_start(thread)

threading.Thread.start = counted_start

def thread_cost(rounds=200):
    # CPU of the process for one pool of one thread: created, used once, shut down.
    def once():
        with ThreadPoolExecutor() as pool:
            pool.submit(int).result()
    once()
    start = time.process_time()
    for _ in range(rounds):
        once()
    return (time.process_time() - start) / rounds

ThreadPoolExecutor = concurrent.futures.ThreadPoolExecutor
one_thread_seconds = thread_cost()
concurrent.futures.ThreadPoolExecutor = InlineExecutor
import login, login_mfa, me, mfa_totp, mfa_totp_confirm, register
from tests.conftest import http_request

password, count = sys.argv[1], int(sys.argv[2])

def ok(response, *expected):
    assert response.status_code in (expected or (200, 201)), response.get_body()
    return json.loads(response.get_body() or b"null")

def body(email):
    return {"email": email, "password": password}

AREAS = (
    ("Argon2id", ("argon2",)),
    ("azure-core pipeline", ("azure/core/",)),
    ("Tables SDK", ("azure/data/tables/",)),
    ("requests", ("requests/",)),
    ("urllib3", ("urllib3/",)),
    ("stdlib email (batch bodies)", ("/email/",)),
    ("stdlib HTTP, sockets", ("http/client.py", "socket.py", "ssl.py", "selectors.py", "'recv", "'sendall",
                              "'connect", "'readinto", "'poll")),
    ("JSON", ("json/", "'dumps", "'loads")),
    ("logging", ("logging/",)),
    ("tokens (PyJWT, hmac)", ("jwt/", "hmac.py", "hashlib", "'_hashlib")),
    ("ours (shared, functions)", ("/shared/", "/login/", "/register/", "/me/", "/login_mfa/")),
    ("azure.functions", ("azure/functions/",)),
)

GENERIC = ("~", "<frozen", "/typing.py", "/re/", "/abc.py", "/enum.py", "/functools.py", "/copy.py")

def own_area(key):
    filename, _, name = key
    where = filename + " '" + name
    for label, marks in AREAS:
        if any(mark in where for mark in marks):
            return label
    return None

def shares(stats, key, seen=()):
    # Built-ins and generic library code count for whoever called them, in proportion to the calls.
    label = own_area(key)
    generic = key[0] == "~" or any(mark in key[0] for mark in GENERIC[1:])
    if label is not None and not generic:
        return {label: 1.0}
    callers = stats[key][4]
    if not callers or key in seen:
        return {label or "other": 1.0}
    total = sum(value[2] for value in callers.values()) or float(len(callers))
    split = {}
    for caller, value in callers.items():
        weight = (value[2] or (0.0 if total else 1.0)) / total if total else 1.0 / len(callers)
        for name, part in shares(stats, caller, (*seen, key)).items():
            split[name] = split.get(name, 0.0) + weight * part
    return split

def profile(label, calls):
    profiler = cProfile.Profile(time.thread_time)
    threads_started[0] = 0
    for call in calls:
        profiler.enable()
        call()
        profiler.disable()
    threads = threads_started[0] / len(calls)
    stats = pstats.Stats(profiler).stats
    by_area, top = {}, []
    for key, (_, _, own, _, _) in stats.items():
        for name, part in shares(stats, key).items():
            by_area[name] = by_area.get(name, 0.0) + part * own / len(calls)
        top.append((own / len(calls), f"{key[0].rsplit('site-packages/', 1)[-1]}:{key[1]} {key[2]}"))
    top.sort(reverse=True)
    return label, {"areas": by_area, "top": [t for t in top if "argon2" not in t[1]][:6], "threads": threads}

register.main(http_request("POST", "register", body("warm@example.com")))
token = ok(login.main(http_request("POST", "login", body("warm@example.com"))))["token"]
ok(me.main(http_request("GET", "me", token=token)))
results = dict([
    profile("login", [lambda: ok(login.main(http_request("POST", "login", body("warm@example.com"))))]
            * count),
    profile("register", [
        (lambda n=n: ok(register.main(http_request("POST", "register", body(f"p{n}@example.com")))))
        for n in range(count)
    ]),
    profile("gate (GET /api/me)", [lambda: ok(me.main(http_request("GET", "me", token=token)))] * count),
])

second_steps = []
for n in range(count):
    email = f"totp{n}@example.com"
    first = ok(register.main(http_request("POST", "register", body(email))))["token"]
    enrol = mfa_totp.main(http_request("POST", "mfa/totp", {"password": password}, token=first))
    secret = ok(enrol)["secret"]
    authenticator, step = pyotp.TOTP(secret), int(time.time()) // 30
    ok(mfa_totp_confirm.main(
        http_request("POST", "mfa/totp/confirm", {"code": authenticator.at(step * 30)}, token=first)))
    challenge = ok(login.main(http_request("POST", "login", body(email))), 403)["mfaToken"]
    code = authenticator.at(max(step + 1, int(time.time()) // 30 - 1) * 30)
    second_steps.append(
        lambda c=challenge, k=code: ok(login_mfa.main(
            http_request("POST", "login/mfa", {"mfaToken": c, "code": k}))))
results.update([profile("login/mfa", second_steps)])
print(json.dumps({"routes": results, "one_thread": one_thread_seconds}))
"""


def profile_requests(count: int) -> dict[str, Any]:
    """Run the profile in a child process on an Azurite of its own.

    :returns: ``routes`` (per route: ``areas``, ``top``, ``threads``) and ``one_thread`` (seconds).
    """
    with Azurite() as azurite:
        environment = app_environment(
            azurite.connection_string,
            "Profile",
            {
                "AUTH_ENCRYPTION_KEY": secrets.token_hex(32),
                "AUTH_RATE_LIMIT_REGISTER": "0",
                "AUTH_RATE_LIMIT_LOGIN": "0",
            },
        )
        output = run_script(_SCRIPT, [PASSWORD, str(count)], environment)
    result: dict[str, Any] = json.loads(output)
    return result


def report_profile(count: int, report: Report) -> dict[str, float]:
    """Figure 12; returns each route's CPU per request beyond Argon2id (seconds)."""
    profiled = profile_requests(count)
    results: dict[str, dict[str, Any]] = profiled["routes"]
    one_thread: float = profiled["one_thread"]
    report.table(
        "12. Where the CPU of a request goes",
        f"Each route called {count} times in one process (the function modules as the worker calls them, "
        "no HTTP server) against Azurite, under cProfile with the calling thread's CPU clock: self time "
        "per request, summed by where the code lives. Profiling adds its own cost per Python call, so "
        "the split matters more than the sum; the host's CPU per login without a profiler is in 5b. "
        "Thread pools run inline on the calling thread, where the profiler can time them; the threads "
        "a request would have started (azure-core starts a pool of its own for every batch request) "
        f"are counted beside it, at {ms(one_thread)} of CPU each without a profiler (a pool of one "
        "thread, created, used once and shut down).",
    )
    beyond: dict[str, float] = {}
    for route in ROUTES:
        measured = results[route]
        areas: dict[str, float] = measured["areas"]
        hashing = areas.get("Argon2id", 0.0)
        rest = sum(areas.values()) - hashing
        beyond[route] = rest
        split = ", ".join(
            f"{label} {ms(seconds)}"
            for label, seconds in sorted(areas.items(), key=lambda item: -item[1])
            if label != "Argon2id" and seconds >= 0.00005
        )
        threads = measured["threads"]
        started = f"; threads started per request: {threads:g}" if threads else ""
        report.row(f"{route}: CPU beyond Argon2id", f"{ms(rest)} (Argon2id {ms(hashing)}): {split}{started}")
        top: list[tuple[float, str]] = measured["top"]
        report.row(
            f"{route}: heaviest functions", "; ".join(f"{where} {ms(seconds)}" for seconds, where in top[:4])
        )
    return beyond
