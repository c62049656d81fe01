"""Structured log lines: one stable event name per outcome, with the invocation id.

Every outcome is logged as ``event=<name> invocation_id=<id> key=value ...``, so a
query can select by event and parse the fields (README has a Kusto query for
Application Insights). Fields carry ids, codes and reasons: never passwords,
hashes, tokens or keys.

========================  =======  ============================================
event                     level    when
========================  =======  ============================================
registered                INFO     an account was created
login_succeeded           INFO     a password was right
login_failed              WARNING  unknown email, wrong or overlong password
throttled                 WARNING  refused (429): ``reason=account_locked`` or ``address_rate_limit``
rate_limit_unavailable    WARNING  the per-address counters could not be reached (``fail_open``)
rate_limit_contended      WARNING  an attempt lost 50 write races on its counter; refused
client_address_unknown    WARNING  no usable X-Forwarded-For entry; the attempt is not counted
failure_not_recorded      ERROR    a failed login could not be counted (50 lost write races)
password_rehashed         INFO     a login upgraded an outdated or legacy hash
token_refreshed           INFO     /api/refresh signed a fresh token
logged_out                INFO     /api/logout ended the caller's session (all, for a token without ``sid``)
session_started           INFO     a device session started (``session``: its id)
session_ended             INFO     sessions ended (``reason``: logout, revoked, idle, evicted, password)
login_refused             WARNING  a right password, but ``reason``: account_disabled or email_not_verified
account_disabled          INFO     an operator disabled an account: its tokens are refused at once
account_enabled           INFO     an operator enabled it again (old sessions stay ended)
admin_<command>           INFO     python -m tools.admin changed or exported an account (disable, enable,
                                   unlock, revoke, reset_mfa, export, delete), or resealed every second
                                   factor (reencrypt: ``examined``, ``resealed``, ``unreadable``)
password_changed          INFO     a password was changed
password_check_failed     WARNING  a wrong current password on password/delete (``reason``)
account_deleted           INFO     an account was deleted (``reason=unverified`` by the cleanup)
cleanup_finished          INFO     a scheduled cleanup run (``deleted_<kind>=N``, ``changed``, ``complete``)
legacy_token_accepted     INFO     a Mobile Services token passed the gate
password_reset_requested  INFO     /api/password/forgot queued a reset mail (for any email)
password_reset_completed  INFO     a reset code set a new password
email_verification_requested INFO  /api/email/verification queued a verification mail (for any email)
email_verified            INFO     a verification code marked an email verified
email_change_requested    INFO     /api/me/email queued the mail to the new address
email_changed             INFO     an account moved to its new email (``resumed`` after an interruption)
email_change_refused      INFO     the new email got an account first (409)
email_change_undone       INFO     an interrupted change was undone: the new email was taken
code_rejected             WARNING  a one-time code was refused (``reason``: no_code, wrong_code, expired, ...)
registration_of_existing_email INFO under required verification; the owner is mailed
mail_sent                 INFO     the mail function sent a mail (``kind``)
mail_dropped              INFO     no mail for a request (``reason``: unknown_address, mail_limit, ...)
mail_failed               WARNING  a send failed; the host retries the message later
mail_poisoned             ERROR    the last attempt failed; the message goes to ``<queue>-poison``
mail_not_queued           ERROR    a notice could not be queued after a change that stands
mfa_enrolled              INFO     TOTP was confirmed and turned on (other sessions ended)
mfa_disabled              INFO     TOTP was turned off (with the password and a code)
mfa_challenge_issued      INFO     a right password of an account with TOTP: the second step's token
mfa_succeeded             INFO     a second step signed in (``method``: otp or rec)
mfa_failed                WARNING  a wrong, replayed or concurrent code, or an ``mfaToken`` that spent its
                                   5 tries (``reason``: wrong_code, replayed, challenge_spent)
recovery_code_used        INFO     a recovery code signed in (``left``)
recovery_codes_regenerated INFO    a new set of recovery codes replaced the old
mfa_secret_unreadable     ERROR    a sealed secret did not decrypt (wrong key, or moved between accounts)
mfa_resealed              INFO     a used second factor was sealed again under the current key (``fields``)
passkey_added             INFO     a passkey was added (``passkey``: its id, ``provider``: its AAGUID)
passkey_removed           INFO     a passkey was removed (by the user, or ``admin_remove_passkey``)
passkey_signed_in         INFO     a passkey signed in (``amr``: hwk or swk)
passkey_refused           WARNING  a passkey answer was refused (``reason``; ``flow=registration``: adding)
token_rejected            WARNING  the gate refused a token (``reason``)
refresh_token_rotated     INFO     /api/token/refresh spent a refresh token and issued its successor
refresh_token_retried     INFO     the token spent last came again within the grace: the same successor
refresh_token_reused      WARNING  a spent refresh token came again: that device's session ended
refresh_token_rejected    WARNING  /api/token/refresh refused a refresh token (``reason``)
request_refused           INFO     another 4xx (``code``)
storage_unavailable       WARNING  Table Storage could not be reached (503)
server_misconfigured      ERROR    an app setting is missing or invalid
internal_error            ERROR    a bug (with the traceback, server side only)
========================  =======  ============================================
"""

from __future__ import annotations

import contextvars
import logging
import uuid

__all__ = ["current_invocation_id", "invocation", "log_event"]

logger = logging.getLogger("shared.events")

_invocation_id: contextvars.ContextVar[str] = contextvars.ContextVar("invocation_id", default="-")


def invocation(invocation_id: str | None) -> contextvars.Token[str]:
    """Mark the events that follow, in this thread, as belonging to one invocation."""
    return _invocation_id.set(invocation_id or uuid.uuid4().hex)


def end_invocation(token: contextvars.Token[str]) -> None:
    _invocation_id.reset(token)


def current_invocation_id() -> str:
    return _invocation_id.get()


def log_event(name: str, level: int = logging.INFO, *, exc_info: bool = False, **fields: object) -> None:
    """Log one outcome. Values with spaces are quoted; ``None`` values are left out."""
    parts = [f"event={name}", f"invocation_id={_invocation_id.get()}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        parts.append(f'{key}="{text}"' if " " in text or not text else f"{key}={text}")
    logger.log(level, " ".join(parts), exc_info=exc_info)
