"""Unknown email and wrong password: the same status, body, headers and time.

This compares two paths measured in the same run, interleaved (a side channel, not a speed
target): both read the login row, run one Argon2id verification and write the failure record.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import login
import register
from tests.conftest import AppEnvironment, http_request

PASSWORD = "correct horse battery"


def attempt(email: str) -> Any:
    return login.main(http_request("POST", "login", {"email": email, "password": "not the password"}))


def test_same_answer_and_same_time(app_env: AppEnvironment) -> None:
    # Failures are recorded (as in production) but 60 of them must not lock the accounts.
    app_env.set(AUTH_LOCKOUT_THRESHOLD="1000")
    register.main(http_request("POST", "register", {"email": "known@example.com", "password": PASSWORD}))
    durations: dict[str, list[float]] = {"known@example.com": [], "unknown@example.com": []}
    answers = set()
    for round_number in range(35):
        for email, series in durations.items():
            started = time.perf_counter()
            response = attempt(email)
            elapsed = time.perf_counter() - started
            answers.add((response.status_code, response.get_body(), tuple(sorted(response.headers.items()))))
            if round_number >= 5:  # warm-up rounds are not measured
                series.append(elapsed)
    assert len(answers) == 1, "identical status, body and headers"
    known, unknown = (statistics.median(series) for series in durations.values())
    assert abs(known - unknown) / max(known, unknown) < 0.10, (known, unknown)
