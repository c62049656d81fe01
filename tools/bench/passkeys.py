"""Figure 13: a passkey sign-in (options, then the assertion) against a password login."""

from __future__ import annotations

from tools.bench.app import PASSWORD, running_app
from tools.bench.measuring import interleaved
from tools.bench.report import Report
from tools.emulators.azurite import Azurite


def passkey_cost(azurite: Azurite, samples: int, report: Report) -> None:
    """Figure 13: a passkey sign-in (options, then the assertion) against a password login."""
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
        "13. Sign-in with a passkey",
        "POST /api/passkeys/authentication/options then POST /api/passkeys/authentication with an "
        "assertion from a software authenticator (P-256), against POST /api/login of the same account "
        "(interleaved). The passkey sign-in verifies an ECDSA signature instead of an Argon2id hash, "
        "and writes its challenge row, deletes it, and writes the credential's counter.",
    )
    report.row("login, password", password.spread())
    report.row("sign-in, passkey (options + assertion)", passkey.spread())
    report.row("passkey / password", f"{passkey.median / password.median:.2f}")
