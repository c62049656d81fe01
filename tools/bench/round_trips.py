"""Figure 3: storage round trips per request, counted exactly in a process calling the functions."""

from __future__ import annotations

import json
import secrets

from tools.bench.app import PASSWORD, app_environment, run_script
from tools.bench.report import Report
from tools.emulators.azurite import Azurite


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
import time, pyotp, login_mfa, mfa_totp, mfa_totp_confirm
totp = {"email": "totp@example.com", "password": sys.argv[1]}
first = json.loads(register.main(request("register", totp, "192.0.2.3")).get_body())["token"]
enrol = mfa_totp.main(http_request("POST", "mfa/totp", {"password": sys.argv[1]}, token=first))
app = pyotp.TOTP(json.loads(enrol.get_body())["secret"])
step = int(time.time()) // 30
mfa_totp_confirm.main(http_request("POST", "mfa/totp/confirm", {"code": app.at(step * 30)}, token=first))
challenged = count(lambda: login.main(request("login", totp, "192.0.2.3")))
result["login, second factor on (first step)"] = challenged
mfa_token = json.loads(login.main(request("login", totp, "192.0.2.3")).get_body())["mfaToken"]
code = {"mfaToken": mfa_token, "code": app.at((step + 1) * 30)}
result["login/mfa (second step)"] = count(lambda: login_mfa.main(http_request("POST", "login/mfa", code)))
print(json.dumps(result))
"""
    with Azurite() as azurite:
        environment = app_environment(
            azurite.connection_string,
            "RoundTrips",
            {
                "AUTH_RATE_LIMIT_REGISTER": "0",
                "AUTH_RATE_LIMIT_LOGIN": "0",
                "AUTH_ENCRYPTION_KEY": secrets.token_hex(32),  # the second factor's secrets
            },
        )
        output = run_script(script, [PASSWORD], environment)
    counts = json.loads(output)
    report.table(
        "3. Storage round trips per request",
        "Counted exactly: a hook on the Table client counts every HTTP request it sends (retries included). "
        "The test suite asserts the same counts (tests/accounts/test_round_trips.py, "
        "tests/throttling/test_rate_limits.py, tests/sessions/test_device_sessions.py). "
        "Login reads the login row and adds the device session to the "
        "account row; the gate reads the account row, and writes a session's last-seen time at most once "
        "a minute. With per-address limits on, register and login send one more request (the counter), "
        "concurrently with the request's own work. A login's second step reads the account, its "
        "second-factor row and its login row once each, counts the try on the second-factor row, then "
        "writes the code's use and the login row in one transaction, and the session.",
    )
    targets = {
        "register": 1,
        "login": 2,
        "me": 1,
        "me, 100 calls within a minute (total)": 100,
        "register, limits on": 2,
        "login, limits on, a new address": 3,
        "login, limits on, the same address": 3,
        "login/mfa (second step)": 6,
    }
    for name, (count, status) in counts.items():
        target = targets.get(name)
        met = None if target is None else count == target
        report.row(f"{name} (status {status})", str(count), "" if target is None else str(target), met)
