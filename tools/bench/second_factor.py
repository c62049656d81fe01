"""Figure 10: login with a second factor (both steps, a code from pyotp) against a password alone."""

from __future__ import annotations

import time

from tools.bench.app import PASSWORD, App
from tools.bench.measuring import interleaved
from tools.bench.report import Report


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
