"""A second factor: TOTP with pyotp as the authenticator app, recovery codes; against Azurite."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
import jwt
import pyotp
import pytest

import login
import login_mfa
import me
import mfa_recovery_codes
import mfa_totp
import mfa_totp_confirm
import register
from shared.accounts.service import account_service
from shared.accounts.store import mfa_row_key
from shared.errors import MfaRequired
from shared.mfa.encryption import EncryptionKeys, decrypt, key_id
from shared.storage import storage_requests
from tests.conftest import AppEnvironment, http_request, problem

PASSWORD = "correct horse battery"
RECOVERY_CODE = re.compile(r"^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}$")


def call(
    function: Any, body: Any = None, token: str | None = None, method: str = "POST"
) -> func.HttpResponse:
    response: func.HttpResponse = function.main(http_request(method, "x", body, token=token))
    return response


def body_of(response: func.HttpResponse) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.get_body())
    return document


@dataclass
class Enrolled:
    """An account with TOTP on: its authenticator, recovery codes, and the session that enrolled it."""

    email: str
    token: str
    app: pyotp.TOTP
    recovery_codes: list[str]
    step: int  # the step of the code that confirmed the enrolment

    def code(self, steps_from_confirmation: int) -> str:
        return self.app.at((self.step + steps_from_confirmation) * 30)


def register_account(email: str) -> str:
    response = call(register, {"email": email, "password": PASSWORD})
    assert response.status_code == 201
    return str(body_of(response)["token"])


def enrol(email: str = "mfa@example.com") -> Enrolled:
    token = register_account(email)
    started = call(mfa_totp, {"password": PASSWORD}, token)
    assert started.status_code == 200, started.get_body()
    app = pyotp.TOTP(body_of(started)["secret"])
    step = int(time.time()) // 30
    confirmed = call(mfa_totp_confirm, {"code": app.at(step * 30)}, token)
    assert confirmed.status_code == 200, confirmed.get_body()
    body = body_of(confirmed)
    return Enrolled(email, body["token"], app, body["recoveryCodes"], step)


def challenge(email: str) -> str:
    response = call(login, {"email": email, "password": PASSWORD})
    assert response.status_code == 403, response.get_body()
    document = problem(response)
    assert document["code"] == "mfa_required"
    return str(document["mfaToken"])


def second_step(mfa_token: str, **proof: str) -> func.HttpResponse:
    return call(login_mfa, {"mfaToken": mfa_token, **proof})


def profile(token: str) -> dict[str, Any]:
    response = call(me, token=token, method="GET")
    assert response.status_code == 200, response.get_body()
    return body_of(response)


class TestEnrolment:
    """POST /api/mfa/totp and /api/mfa/totp/confirm."""

    def test_enrolment_gives_what_an_authenticator_app_reads(self, app_env: AppEnvironment) -> None:
        """A 160-bit base32 secret, its otpauth URI and the URI's QR code as an SVG data URI."""
        token = register_account("mfa@example.com")
        response = call(mfa_totp, {"password": PASSWORD}, token)
        assert response.status_code == 200
        body = body_of(response)
        assert re.fullmatch(r"[A-Z2-7]{32}", body["secret"])
        uri = urlsplit(body["otpauthUri"])
        assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
        query = parse_qs(uri.query)
        assert query["secret"] == [body["secret"]]
        assert query["issuer"] == ["Mobile app"]
        assert (query["algorithm"], query["digits"], query["period"]) == (["SHA1"], ["6"], ["30"])
        assert "mfa%40example.com" in uri.path or "mfa@example.com" in uri.path
        assert pyotp.parse_uri(body["otpauthUri"]).secret == body["secret"]
        assert body["qrCode"].startswith("data:image/svg+xml")
        assert profile(token)["mfa"] == {"totp": False, "recoveryCodesLeft": 0}, "not on until confirmed"

    def test_a_wrong_password_is_401(self, app_env: AppEnvironment) -> None:
        """Enrolment asks for the password again."""
        token = register_account("mfa@example.com")
        response = call(mfa_totp, {"password": "wrong password!"}, token)
        assert problem(response)["code"] == "invalid_credentials"

    def test_confirmation_turns_it_on_and_ends_other_sessions(self, app_env: AppEnvironment) -> None:
        """10 readable recovery codes; the confirming device's new token works, older tokens do not."""
        token = register_account("mfa@example.com")
        other_device = body_of(call(login, {"email": "mfa@example.com", "password": PASSWORD}))["token"]
        app = pyotp.TOTP(body_of(call(mfa_totp, {"password": PASSWORD}, token))["secret"])
        wrong = call(mfa_totp_confirm, {"code": f"{(int(app.now()) + 1) % 10**6:06d}"}, token)
        assert problem(wrong)["code"] == "invalid_code"
        confirmed = body_of(call(mfa_totp_confirm, {"code": app.now()}, token))
        codes = confirmed["recoveryCodes"]
        assert len(set(codes)) == 10
        assert all(RECOVERY_CODE.match(code) for code in codes)
        assert profile(confirmed["token"])["mfa"] == {"totp": True, "recoveryCodesLeft": 10}
        for old in (token, other_device):
            assert call(me, token=old, method="GET").status_code == 401
        assert problem(call(mfa_totp, {"password": PASSWORD}, confirmed["token"]))["code"] == (
            "mfa_already_enabled"
        )

    def test_a_new_enrolment_replaces_a_pending_secret(self, app_env: AppEnvironment) -> None:
        """Only the latest pending secret can be confirmed."""
        token = register_account("mfa@example.com")
        first = pyotp.TOTP(body_of(call(mfa_totp, {"password": PASSWORD}, token))["secret"])
        second = pyotp.TOTP(body_of(call(mfa_totp, {"password": PASSWORD}, token))["secret"])
        assert problem(call(mfa_totp_confirm, {"code": first.now()}, token))["code"] == "invalid_code"
        assert call(mfa_totp_confirm, {"code": second.now()}, token).status_code == 200


class TestLogin:
    """POST /api/login and /api/login/mfa."""

    def test_login_needs_the_second_step(self, app_env: AppEnvironment) -> None:
        """403 mfa_required with a token the gate refuses; the code gives a session with amr."""
        account = enrol()
        mfa_token = challenge(account.email)
        assert call(me, token=mfa_token, method="GET").status_code == 401, "the gate refuses it"
        response = second_step(mfa_token, code=account.code(1))
        assert response.status_code == 200, response.get_body()
        token = body_of(response)["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        assert profile(token)["email"] == account.email
        assert problem(second_step(mfa_token, code=account.code(2)))["code"] == "invalid_token", "single use"

    def test_a_wrong_password_stays_401(self, app_env: AppEnvironment) -> None:
        """The second factor is asked for only after the password checked out."""
        account = enrol()
        response = call(login, {"email": account.email, "password": "wrong password!"})
        assert problem(response)["code"] == "invalid_credentials"
        assert "mfaToken" not in problem(response)

    def test_each_code_works_once_and_only_later_steps(self, app_env: AppEnvironment) -> None:
        """The same code twice is refused; so are earlier steps and steps two away; the next one works."""
        account = enrol()
        assert second_step(challenge(account.email), code=account.code(1)).status_code == 200
        mfa_token = challenge(account.email)
        for stale in (account.code(1), account.code(0), account.code(-1)):
            assert problem(second_step(mfa_token, code=stale))["code"] == "invalid_code"
        assert problem(second_step(mfa_token, code=account.code(3)))["code"] == "invalid_code"

    def test_adjacent_steps_are_accepted(self, app_env: AppEnvironment) -> None:
        """A code 30 s ahead (a phone's clock running fast) is accepted when later than the last used."""
        account = enrol()
        now_step = int(time.time()) // 30
        ahead = account.app.at((now_step + 1) * 30)
        response = second_step(challenge(account.email), code=ahead)
        assert response.status_code == 200, response.get_body()

    def test_a_recovery_code_works_once(self, app_env: AppEnvironment) -> None:
        """A recovery code signs in once and is then used up; amr says how."""
        account = enrol()
        code = account.recovery_codes[3]
        response = second_step(challenge(account.email), recoveryCode=code.upper().replace("-", " "))
        assert response.status_code == 200, response.get_body()
        token = body_of(response)["token"]
        assert jwt.decode(token, options={"verify_signature": False})["amr"] == ["pwd", "rec", "mfa"]
        assert profile(token)["mfa"]["recoveryCodesLeft"] == 9
        assert problem(second_step(challenge(account.email), recoveryCode=code))["code"] == "invalid_code"

    def test_guessing_codes_locks_the_account(self, app_env: AppEnvironment) -> None:
        """Wrong second factors count toward the lockout like wrong passwords."""
        app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600")
        account = enrol()
        mfa_token = challenge(account.email)
        for guess in ("000000", "111111", "222222"):
            assert second_step(mfa_token, code=guess).status_code == 400
        locked = second_step(mfa_token, code=account.code(1))
        assert locked.status_code == 429

    def test_the_challenge_dies_after_its_lifetime(self, app_env: AppEnvironment) -> None:
        """AUTH_MFA_CHALLENGE_SECONDS bounds the second step."""
        app_env.set(AUTH_MFA_CHALLENGE_SECONDS="5")
        account = enrol()
        mfa_token = challenge(account.email)
        time.sleep(6)
        assert problem(second_step(mfa_token, code=account.code(1)))["code"] == "invalid_token"

    def test_refresh_keeps_amr_and_require_mfa_tells_sessions_apart(self, app_env: AppEnvironment) -> None:
        """authenticate(require_mfa=True) refuses a password-only session with 403 mfa_required."""
        import refresh

        password_only = register_account("plain@example.com")
        account = enrol()
        with_factor = body_of(second_step(challenge(account.email), code=account.code(1)))["token"]
        refreshed = body_of(call(refresh, token=with_factor))["token"]
        assert jwt.decode(refreshed, options={"verify_signature": False})["amr"] == ["pwd", "otp", "mfa"]
        service = account_service()
        assert service.authenticate(refreshed, require_mfa=True).email == account.email
        with pytest.raises(MfaRequired):
            service.authenticate(password_only, require_mfa=True)


class TestManagement:
    """Regenerating recovery codes, disabling, deleting, reset, secrets at rest, misconfiguration."""

    def test_regeneration_replaces_the_set(self, app_env: AppEnvironment) -> None:
        """A new set of 10; the old codes stop working."""
        account = enrol()
        response = call(mfa_recovery_codes, {"password": PASSWORD, "code": account.code(1)}, account.token)
        assert response.status_code == 200, response.get_body()
        fresh = body_of(response)["recoveryCodes"]
        assert len(fresh) == 10
        assert not set(fresh) & set(account.recovery_codes)
        old = second_step(challenge(account.email), recoveryCode=account.recovery_codes[0])
        assert problem(old)["code"] == "invalid_code"
        assert second_step(challenge(account.email), recoveryCode=fresh[0]).status_code == 200

    def test_disabling_needs_password_and_code(self, app_env: AppEnvironment) -> None:
        """DELETE /api/mfa/totp: then the password alone logs in."""
        account = enrol()
        wrong = call(mfa_totp, {"password": PASSWORD, "code": "000000"}, account.token, method="DELETE")
        assert problem(wrong)["code"] == "invalid_code"
        recovery = account.recovery_codes[0]
        done = call(mfa_totp, {"password": PASSWORD, "code": recovery}, account.token, method="DELETE")
        assert done.status_code == 204
        assert call(login, {"email": account.email, "password": PASSWORD}).status_code == 200
        assert profile(account.token)["mfa"] == {"totp": False, "recoveryCodesLeft": 0}
        assert not [e for e in app_env.entities() if e["RowKey"].startswith("mfa:")]

    def test_deleting_the_account_needs_a_code(self, app_env: AppEnvironment) -> None:
        """DELETE /api/me with TOTP on: the password is not enough."""
        account = enrol()
        without = call(me, {"password": PASSWORD}, account.token, method="DELETE")
        assert problem(without)["code"] == "invalid_request"
        done = call(me, {"password": PASSWORD, "code": account.code(1)}, account.token, method="DELETE")
        assert done.status_code == 204
        assert app_env.entities() == [] or all(
            e["PartitionKey"].startswith("rate") for e in app_env.entities()
        )

    def test_the_table_holds_neither_secret_nor_recovery_code(self, app_env: AppEnvironment) -> None:
        """A copy of the table alone reveals no secret and no recovery code."""
        account = enrol()
        raw = json.dumps(app_env.entities(), default=str).lower()
        assert account.app.secret.lower() not in raw
        for code in account.recovery_codes:
            assert code not in raw
            assert code.replace("-", "") not in raw

    def test_a_secret_cannot_be_moved_to_another_account(self, app_env: AppEnvironment) -> None:
        """The account id is the sealed secret's associated data: a copied secret does not decrypt."""
        victim, attacker = enrol("victim@example.com"), enrol("attacker@example.com")
        table = app_env.table()
        rows = {e["RowKey"]: e for e in app_env.entities() if e["RowKey"].startswith("mfa:")}
        victim_row = next(r for r in rows.values() if victim.email not in json.dumps(r, default=str))
        attacker_row = next(r for key, r in rows.items() if r is not victim_row)
        attacker_row["Secret"] = victim_row["Secret"]
        table.update_entity(attacker_row)
        response = second_step(challenge(attacker.email), code=victim.code(1))
        assert problem(response)["code"] == "invalid_code"

    def test_a_missing_encryption_key_fails_closed(self, app_env: AppEnvironment) -> None:
        """The MFA routes answer 500 naming nothing to the client; other logins are unaffected."""
        account = enrol()
        register_account("plain@example.com")
        app_env.set(AUTH_ENCRYPTION_KEY=None)
        plain = register_account("plain2@example.com")
        assert call(login, {"email": "plain@example.com", "password": PASSWORD}).status_code == 200
        refused = call(mfa_totp, {"password": PASSWORD}, plain)
        assert (refused.status_code, problem(refused)["code"]) == (500, "server_misconfigured")
        mfa_login = call(login, {"email": account.email, "password": PASSWORD})
        assert (mfa_login.status_code, problem(mfa_login)["code"]) == (500, "server_misconfigured")

    def test_a_password_reset_keeps_the_second_factor(self, mail_env: AppEnvironment, inbox: Any) -> None:
        """A reset by mail changes the password; the login still asks for the code."""
        import password_forgot
        import password_reset
        from tests.mailtest import deliver_queued

        account = enrol()
        assert call(password_forgot, {"email": account.email}).status_code == 202
        deliver_queued(mail_env)
        code = next(m for m in inbox.wait_for(account.email, 2) if "reset" in m.subject.lower()).code
        new_password = "another fine passphrase"
        reset = {"email": account.email, "code": code, "newPassword": new_password}
        assert call(password_reset, reset).status_code == 204
        response = call(login, {"email": account.email, "password": new_password})
        assert problem(response)["code"] == "mfa_required"

    def test_disabling_sends_a_notice(self, mail_env: AppEnvironment, inbox: Any) -> None:
        """The owner hears that the second factor was turned off."""
        from tests.mailtest import deliver_queued

        account = enrol()
        call(mfa_totp, {"password": PASSWORD, "code": account.code(1)}, account.token, method="DELETE")
        deliver_queued(mail_env)
        notice = inbox.wait_for(account.email, 2)[-1]
        assert "two-step" in notice.subject.lower()


def test_an_email_change_keeps_the_second_factor(mail_env: AppEnvironment, inbox: Any) -> None:
    """The second-factor row moves with the account to the new email's partition."""
    import email_change
    import email_change_confirm
    from shared.accounts.store import partition_for_email
    from tests.mailtest import deliver_queued

    account = enrol("before@example.com")
    new_email = next(
        f"after{i}@example.com"
        for i in range(100)
        if partition_for_email(f"after{i}@example.com") != partition_for_email("before@example.com")
    )
    assert call(email_change, {"password": PASSWORD, "newEmail": new_email}, account.token).status_code == 202
    deliver_queued(mail_env)
    code = inbox.wait_for(new_email)[-1].code
    assert call(email_change_confirm, {"code": code}, account.token).status_code == 200
    response = second_step(challenge(new_email), code=account.code(1))
    assert response.status_code == 200, response.get_body()
    rows = [e for e in mail_env.entities() if e["RowKey"].startswith("mfa:")]
    assert [r["PartitionKey"] for r in rows] == [partition_for_email(new_email)]


def mfa_row(env: AppEnvironment, email: str) -> dict[str, Any]:
    """The second-factor row of the account of ``email``, read with the bare SDK."""
    user_id = account_service().store.credentials(email).user_id  # type: ignore[union-attr]
    return next(e for e in env.entities() if e["RowKey"] == mfa_row_key(user_id))


def sealed_key_id(sealed: str) -> str:
    return sealed.split(".")[1]


def test_a_key_rotation_reseals_what_is_used_and_the_old_key_can_go(app_env: AppEnvironment) -> None:
    """After a rotation, a successful second step seals the row again under the current key (its key id
    moves), so the old key can be dropped and that account still signs in, with TOTP and recovery codes."""
    import secrets

    active, idle = enrol("active@example.com"), enrol("idle@example.com")
    old_key = app_env.values["AUTH_ENCRYPTION_KEY"]
    new_key = secrets.token_hex(32)
    old_id, new_id = key_id(bytes.fromhex(old_key)), key_id(bytes.fromhex(new_key))
    assert sealed_key_id(mfa_row(app_env, active.email)["Secret"]) == old_id
    app_env.set(AUTH_ENCRYPTION_KEY=new_key, AUTH_PREVIOUS_ENCRYPTION_KEYS=old_key)
    assert second_step(challenge(active.email), code=active.code(1)).status_code == 200
    row = mfa_row(app_env, active.email)
    assert sealed_key_id(row["Secret"]) == new_id
    assert sealed_key_id(row["RecoveryKey"]) == new_id
    assert sealed_key_id(mfa_row(app_env, idle.email)["Secret"]) == old_id, "unused rows wait for reencrypt"
    app_env.set(AUTH_PREVIOUS_ENCRYPTION_KEYS=None)
    recovered = second_step(challenge(active.email), recoveryCode=active.recovery_codes[0])
    assert recovered.status_code == 200, "codes made under the old key outlive it"
    user_id = account_service().store.credentials(active.email).user_id  # type: ignore[union-attr]
    only_new = EncryptionKeys.from_hex(new_key)
    opened = decrypt(only_new, row["Secret"], associated_data=user_id.encode())
    assert opened.decode() == active.app.secret, "the TOTP secret opens under the current key alone"
    lost = second_step(challenge(idle.email), code=idle.code(1))
    assert problem(lost)["code"] == "invalid_code", "without the old key nothing still sealed under it opens"


def test_a_recovery_code_after_a_rotation_keeps_only_its_own_digest_key(app_env: AppEnvironment) -> None:
    """A recovery code first used after a rotation reseals too; the rest of the set still works."""
    import secrets

    account = enrol()
    old_key = app_env.values["AUTH_ENCRYPTION_KEY"]
    app_env.set(AUTH_ENCRYPTION_KEY=secrets.token_hex(32), AUTH_PREVIOUS_ENCRYPTION_KEYS=old_key)
    assert second_step(challenge(account.email), recoveryCode=account.recovery_codes[0]).status_code == 200
    app_env.set(AUTH_PREVIOUS_ENCRYPTION_KEYS=None)
    assert second_step(challenge(account.email), recoveryCode=account.recovery_codes[1]).status_code == 200
    assert second_step(challenge(account.email), code=account.code(1)).status_code == 200


class TestGuessing:
    """Wrong codes spread over fresh logins add up; a challenge takes at most five codes."""

    def test_fresh_logins_do_not_clear_wrong_codes(self, app_env: AppEnvironment) -> None:
        """A right password does not reset the count: rounds of login + wrong code reach 429."""
        app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600")
        account = enrol()
        for _ in range(3):
            assert problem(second_step(challenge(account.email), code="000000"))["code"] == "invalid_code"
        locked = call(login, {"email": account.email, "password": PASSWORD})
        assert locked.status_code == 429

    def test_wrong_codes_and_wrong_passwords_add_up(self, app_env: AppEnvironment) -> None:
        """Two wrong passwords and one wrong code lock an account whose threshold is 3."""
        app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600")
        account = enrol()
        for _ in range(2):
            assert call(login, {"email": account.email, "password": "wrong password!"}).status_code == 401
        assert problem(second_step(challenge(account.email), code="000000"))["code"] == "invalid_code"
        assert call(login, {"email": account.email, "password": PASSWORD}).status_code == 429

    def test_a_completed_second_step_clears_the_count(self, app_env: AppEnvironment) -> None:
        """Only a login whose second step succeeded starts the consecutive count again."""
        app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600")
        account = enrol()
        for _ in range(2):
            second_step(challenge(account.email), code="000000")
        login_row = next(
            e for e in app_env.entities() if e.get("Email") == account.email and "PasswordHash" in e
        )
        assert login_row["FailedLogins"] == 2, "the right passwords in between cleared nothing"
        assert second_step(challenge(account.email), code=account.code(1)).status_code == 200
        login_row = next(
            e for e in app_env.entities() if e.get("Email") == account.email and "PasswordHash" in e
        )
        assert login_row["FailedLogins"] == 0
        for _ in range(2):
            assert second_step(challenge(account.email), code="000000").status_code == 400
        assert (
            second_step(challenge(account.email), recoveryCode=account.recovery_codes[0]).status_code == 200
        )

    def test_a_challenge_dies_after_five_wrong_codes(self, app_env: AppEnvironment) -> None:
        """After five wrong codes the right one is refused with that token; a fresh login works."""
        app_env.set(AUTH_LOCKOUT_THRESHOLD="20")
        account = enrol()
        mfa_token = challenge(account.email)
        for guess in ("000000", "111111", "222222", "333333", "444444"):
            assert problem(second_step(mfa_token, code=guess))["code"] == "invalid_code"
        dead = second_step(mfa_token, code=account.code(1))
        assert (dead.status_code, problem(dead)["code"]) == (401, "invalid_token")
        assert mfa_row(app_env, account.email)["ChallengeTries"] == 5
        assert second_step(challenge(account.email), code=account.code(1)).status_code == 200


def test_guessing_codes_on_the_management_routes_locks_too(app_env: AppEnvironment) -> None:
    """A stolen session and password cannot guess codes at DELETE /api/mfa/totp without the lockout."""
    app_env.set(AUTH_LOCKOUT_THRESHOLD="3", AUTH_LOCKOUT_BASE_SECONDS="600")
    account = enrol()
    for guess in ("000000", "111111", "222222"):
        response = call(mfa_totp, {"password": PASSWORD, "code": guess}, account.token, method="DELETE")
        assert problem(response)["code"] == "invalid_code"
    locked = call(mfa_totp, {"password": PASSWORD, "code": account.code(1)}, account.token, method="DELETE")
    assert locked.status_code == 429


def test_a_code_typed_with_a_space_works_everywhere(app_env: AppEnvironment) -> None:
    """'123 456' as authenticator apps show it, on a management route too."""
    account = enrol()
    code = account.code(1)
    spaced = f"{code[:3]} {code[3:]}"
    response = call(mfa_recovery_codes, {"password": PASSWORD, "code": spaced}, account.token)
    assert response.status_code == 200, response.get_body()


def test_recovery_code_use_and_regeneration_send_notices(mail_env: AppEnvironment, inbox: Any) -> None:
    """Each recovery code used at login mails the count left (with 2 or fewer, how to get new ones);
    regenerating the codes mails a notice too."""
    from tests.mailtest import deliver_queued

    mail_env.set(AUTH_MAIL_LIMIT="20/3600")
    account = enrol("nina@example.com")
    deliver_queued(mail_env)  # the verification mail
    for used, code in enumerate(account.recovery_codes[:8], start=1):
        assert second_step(challenge(account.email), recoveryCode=code).status_code == 200
        deliver_queued(mail_env)  # the count is read when the mail is sent
        inbox.wait_for(account.email, 1 + used)
    notices = [m for m in inbox.wait_for(account.email, 9) if "recovery code was used" in m.subject]
    assert len(notices) == 8
    texts = sorted(m.text for m in notices)
    assert sum("9 codes are left" in t for t in texts) == 1
    assert sum("2 codes are left" in t for t in texts) == 1
    advice = [t for t in texts if "You are running out of recovery codes" in t]
    assert len(advice) == 1
    assert "2 codes are left" in advice[0]
    regenerated = call(mfa_recovery_codes, {"password": PASSWORD, "code": account.code(1)}, account.token)
    assert regenerated.status_code == 200
    deliver_queued(mail_env)
    latest = inbox.wait_for(account.email, 10)[-1]
    assert "New recovery codes" in latest.subject
    assert "A new set of 10 recovery codes" in latest.text


def test_a_password_change_keeps_the_second_factor_in_amr(app_env: AppEnvironment) -> None:
    """A session that passed a second factor keeps its amr for the device's new session after a change."""
    import password

    account = enrol()
    token = body_of(second_step(challenge(account.email), code=account.code(1)))["token"]
    change = {"currentPassword": PASSWORD, "newPassword": "another fine passphrase"}
    changed = call(password, change, token)
    assert changed.status_code == 200, changed.get_body()
    new_token = body_of(changed)["token"]
    assert jwt.decode(new_token, options={"verify_signature": False})["amr"] == ["pwd", "otp", "mfa"]
    assert account_service().authenticate(new_token, require_mfa=True).email == account.email
    plain = register_account("plain-change@example.com")
    changed_plain = body_of(call(password, change, plain))["token"]
    assert jwt.decode(changed_plain, options={"verify_signature": False})["amr"] == ["pwd"]


def test_the_second_step_reads_each_row_once(app_env: AppEnvironment) -> None:
    """The account, its second-factor row and its login row read once each; the try counted; one
    transaction for the code and the login row; the session written: six round trips."""
    enrolled = enrol("trips@example.com")
    mfa_token = challenge(enrolled.email)
    storage_requests.reset()
    response = second_step(mfa_token, code=enrolled.code(1))
    assert response.status_code == 200, response.get_body()
    assert storage_requests.count == 6
