"""Operate on one account: show, disable or enable, unlock, sessions, passkeys, reset-mfa, export, delete.

    python -m tools.admin show ACCOUNT [--json]
    python -m tools.admin disable ACCOUNT [--reason TEXT]
    python -m tools.admin enable ACCOUNT
    python -m tools.admin unlock ACCOUNT
    python -m tools.admin sessions ACCOUNT [--json]
    python -m tools.admin revoke ACCOUNT [--session ID]
    python -m tools.admin passkeys ACCOUNT [--json]
    python -m tools.admin remove-passkey ACCOUNT --passkey ID
    python -m tools.admin reset-mfa ACCOUNT
    python -m tools.admin export ACCOUNT
    python -m tools.admin delete ACCOUNT [--yes]
    python -m tools.admin reencrypt [--dry-run] [--page-size N] [--from TOKEN]
    python -m tools.admin keys new [--algorithm ES256|RS256]
    python -m tools.admin keys status [--json]

ACCOUNT is an email (normalized as at login) or a user id (``custom:...``,
``Custom:...`` for imported accounts). Settings are the app's: from the
environment, then ``local.settings.json`` (``--settings FILE``), as for
``tools.import_accounts.command``. Tables are printed for people; ``--json`` prints
JSON for scripts (``export`` always does). Each change is logged on stderr as
``event=admin_<command> ... user_id=...`` (and ``admin_export``).

``reencrypt`` works on every account: it seals each second-factor row still
under a key of ``AUTH_PREVIOUS_ENCRYPTION_KEYS`` again under
``AUTH_ENCRYPTION_KEY``, a page at a time (progress and a ``--from`` token on
stderr after each page); ``--dry-run`` only counts.
``keys new`` prints a new private key (for Key Vault: ``AUTH_SIGNING_PRIVATE_KEY``) and its
public half (for ``AUTH_NEXT_SIGNING_PUBLIC_KEY``), each also on one line with ``\\n`` for
portals; ``keys status`` says what signs, what is published and since when (docs/tokens.md).

Exit status: 0 done, or nothing to do; 1 no such account, no such session,
a delete not confirmed, or rows that no configured key opens (reencrypt);
2 bad arguments or app settings; 3 storage unavailable, or the account kept
changing under the command: run it again.
Errors are one line on stderr, ``error: <reason>``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from shared.accounts.service import account_service
from shared.errors import InvalidRequest, NotFound, ServiceError, SettingError
from shared.events import end_invocation, invocation
from shared.operations.admin import AccountAdmin, MfaReset, Reencryption, is_email
from shared.passkeys import management as passkey_management
from shared.passkeys.service import Passkeys
from shared.passkeys.service import passkeys as passkey_service
from tools.admin.keys import KEY_COMMANDS
from tools.admin.output import print_fields, print_json, print_table, report, who, yes_no
from tools.devhost.local_settings import PROJECT_ROOT, apply_local_settings

EXIT_NOT_DONE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

Command = Callable[[AccountAdmin, argparse.Namespace], int]


def show(admin: AccountAdmin, args: argparse.Namespace) -> int:
    summary = admin.summary(admin.find(args.account))
    if args.json:
        print_json(summary)
        return 0
    lockout, mfa = summary["lockout"], summary["mfa"]
    disabled = "no"
    if summary["disabled"]:
        disabled = f"yes: {summary['disabledReason']}" if summary["disabledReason"] else "yes"
    print_fields(
        [
            ("user id", summary["userId"]),
            ("email", summary["email"]),
            ("email verified", yes_no(summary["emailVerified"])),
            ("created", summary["createdAt"]),
            ("disabled", disabled),
            ("failed logins", str(lockout["failedLogins"])),
            ("locked until", lockout["lockedUntil"] or "-"),
            ("second factor", "on" if mfa["totp"] else "off"),
            ("recovery codes left", str(mfa["recoveryCodesLeft"])),
            ("live sessions", str(summary["liveSessions"])),
            ("passkeys", str(summary["passkeys"])),
        ]
    )
    return 0


def sessions(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    found = admin.sessions(account)
    if args.json:
        print_json({"userId": account.user_id, "sessions": found})
    elif not found:
        print(f"{account.user_id} has no live sessions")
    else:
        rows = [(s["id"], s["createdAt"], s["lastSeenAt"], s["userAgent"] or "-") for s in found]
        print_table(("ID", "CREATED", "LAST SEEN", "USER AGENT"), rows)
    return 0


def disable(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.disable(admin.find(args.account), args.reason)
    owner = who(account.user_id, account.email)
    report(
        args,
        f"disabled {owner}: its tokens are refused, its password no longer logs in",
        userId=account.user_id,
        disabled=True,
        reason=args.reason,
    )
    return 0


def enable(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    changed = admin.enable(account)
    owner = who(account.user_id, account.email)
    message = f"enabled {owner}; its old sessions stay ended" if changed else f"{owner} was not disabled"
    report(args, message, userId=account.user_id, disabled=False, changed=changed)
    return 0


def unlock(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    cleared = admin.unlock(account)
    owner = who(account.user_id, account.email)
    if cleared is None:
        report(
            args,
            f"{owner} was not locked (no failed logins on record)",
            userId=account.user_id,
            changed=False,
        )
    else:
        message = f"unlocked {owner}: cleared {cleared.consecutive_failures} consecutive failed logins"
        report(args, message, userId=account.user_id, changed=True, failedLogins=cleared.consecutive_failures)
    return 0


def revoke(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    try:
        admin.revoke(account, args.session)
    except NotFound:
        raise NotFound(f"no such session {args.session!r} of {account.user_id}") from None
    owner = who(account.user_id, account.email)
    message = (
        f"ended session {args.session} of {owner}" if args.session else f"ended every session of {owner}"
    )
    report(args, message, userId=account.user_id, revoked=args.session or "all")
    return 0


def passkeys(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    found = [
        passkey_management.passkey_json(p) for p in passkey_management.list_passkeys(_passkeys(), account)
    ]
    if args.json:
        print_json({"userId": account.user_id, "passkeys": found})
    elif not found:
        print(f"{account.user_id} has no passkeys")
    else:
        rows = [
            (p["id"], p["name"], p["createdAt"], p["lastUsedAt"] or "-", p["provider"] or "-") for p in found
        ]
        print_table(("ID", "NAME", "CREATED", "LAST USED", "PROVIDER"), rows)
    return 0


def remove_passkey(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    passkey_management.remove_as_operator(_passkeys(), account, args.passkey)
    owner = who(account.user_id, account.email)
    report(
        args, f"removed passkey {args.passkey} of {owner}; the owner is told by mail", userId=account.user_id
    )
    return 0


def _passkeys() -> Passkeys:
    try:
        return passkey_service()
    except NotFound:
        raise NotFound("passkeys are off (AUTH_PASSKEY_RP_ID is not set)") from None


def reset_mfa(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    outcome = admin.reset_mfa(account)
    owner = who(account.user_id, account.email)
    messages = {
        MfaReset.REMOVED: (
            f"removed the second factor of {owner}: the password alone logs in (owner notified)"
        ),
        MfaReset.PENDING_REMOVED: f"{owner} had no second factor on; removed an unconfirmed enrolment",
        MfaReset.NONE: f"{owner} has no second factor",
    }
    report(args, messages[outcome], userId=account.user_id, secondFactor=outcome.value)
    return 0


def export(admin: AccountAdmin, args: argparse.Namespace) -> int:
    print_json(admin.export(admin.find(args.account)))
    return 0


def delete(admin: AccountAdmin, args: argparse.Namespace) -> int:
    try:
        account = admin.find(args.account)
    except NotFound:
        if is_email(args.account) or not admin.delete_orphan_alias(args.account.strip()):
            raise
        report(args, f"deleted the alias row left of {args.account.strip()}", userId=args.account, rows=1)
        return 0
    owner = who(account.user_id, account.email)
    if not args.yes:
        print(
            f'Delete {owner} and every row of it? This cannot be undone. Type "yes": ',
            end="",
            file=sys.stderr,
        )
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not sys.stdin.isatty():
            print(file=sys.stderr)  # the answer was not echoed: end the prompt's line
        if answer.strip() != "yes":
            print("error: not confirmed; nothing deleted", file=sys.stderr)
            return EXIT_NOT_DONE
    rows = admin.delete(account)
    report(args, f"deleted {owner}: {rows} rows", userId=account.user_id, deleted=True, rows=rows)
    return 0


def reencrypt(admin: AccountAdmin, args: argparse.Namespace) -> int:
    verb = "would reseal" if args.dry_run else "resealed"

    def progress(done: Reencryption) -> None:
        if done.resume_from is not None and not args.json:
            print(
                f"{done.examined} rows so far, {verb} {done.resealed}; resume with --from {done.resume_from}",
                file=sys.stderr,
            )

    outcome = admin.reencrypt(
        dry_run=args.dry_run, page_size=args.page_size, start=args.start, after_page=progress
    )
    message = (
        f"examined {outcome.examined} second-factor rows: {verb} {outcome.resealed} under the current key"
        + (f", {outcome.unreadable} open under no configured key" if outcome.unreadable else "")
    )
    report(
        args,
        message,
        examined=outcome.examined,
        resealed=outcome.resealed,
        unreadable=outcome.unreadable,
        dryRun=args.dry_run,
    )
    return EXIT_NOT_DONE if outcome.unreadable else 0


COMMANDS: dict[str, tuple[Command, str]] = {
    "show": (show, "the account: verified, disabled, lockout, second factor, live sessions"),
    "disable": (disable, "refuse its tokens at once and its password from now on"),
    "enable": (enable, "let it log in again (its old sessions stay ended)"),
    "unlock": (unlock, "clear the lockout after failed logins"),
    "sessions": (sessions, "list its live sessions"),
    "revoke": (revoke, "end one session (--session ID) or all"),
    "passkeys": (passkeys, "list its passkeys"),
    "remove-passkey": (
        remove_passkey,
        "remove one passkey (--passkey ID; a lost phone); the owner is told by mail",
    ),
    "reset-mfa": (reset_mfa, "remove the second factor (lost phone); the owner is told by mail"),
    "export": (export, "everything stored about it, as JSON, secrets left out (GDPR art. 15, 20)"),
    "delete": (delete, "delete every row of it, as DELETE /api/me does"),
}
#: Commands on every account rather than one.
TABLE_COMMANDS: dict[str, tuple[Command, str]] = {
    "reencrypt": (
        reencrypt,
        "seal every second-factor secret under the current AUTH_ENCRYPTION_KEY (after a rotation)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.admin", description="Operate on one account of the app."
    )
    _common_options(parser, defaults=True)
    # The same options after the command, where they must not override one given before it.
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, defaults=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keys = commands.add_parser("keys", parents=[common], help="signing keys: new, status")
    key_commands = keys.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    for name, (_, summary) in KEY_COMMANDS.items():
        action = key_commands.add_parser(name, parents=[common], help=summary, description=summary)
        if name == "new":
            action.add_argument("--algorithm", choices=["ES256", "RS256"], default="ES256")
    for name, (_, summary) in COMMANDS.items():
        command = commands.add_parser(name, parents=[common], help=summary, description=summary)
        command.add_argument("account", metavar="ACCOUNT", help="an email, or a user id (custom:...)")
        if name == "disable":
            command.add_argument("--reason", help="why (kept on the account, shown by show)")
        elif name == "revoke":
            command.add_argument("--session", metavar="ID", help="the session to end (default: all)")
        elif name == "remove-passkey":
            command.add_argument(
                "--passkey", metavar="ID", required=True, help="the passkey's id (see passkeys)"
            )
        elif name == "delete":
            command.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for name, (_, summary) in TABLE_COMMANDS.items():
        command = commands.add_parser(name, parents=[common], help=summary, description=summary)
        command.add_argument("--dry-run", action="store_true", help="count the rows to reseal; write nothing")
        command.add_argument("--page-size", type=int, default=100, help="rows read per request (default 100)")
        command.add_argument(
            "--from", dest="start", metavar="TOKEN", help="carry on from where a run printed it stopped"
        )
    return parser


def _common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    parser.add_argument(
        "--settings",
        type=Path,
        default=PROJECT_ROOT / "local.settings.json" if defaults else argparse.SUPPRESS,
        help="a local.settings.json to read settings from (the environment wins)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="print JSON instead of a table",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_local_settings(args.settings, os.environ)
    with _events_on_stderr():
        try:
            if args.command == "keys":
                return KEY_COMMANDS[args.key_command][0](args)
            command, _ = (COMMANDS | TABLE_COMMANDS)[args.command]
            return command(AccountAdmin(account_service()), args)
        except NotFound as error:
            return _fail(EXIT_NOT_DONE, error.detail)
        except SettingError as error:
            return _fail(EXIT_USAGE, str(error))
        except InvalidRequest as error:
            account = getattr(args, "account", None)
            return _fail(EXIT_USAGE, f"{account!r}: {error.detail}" if account else error.detail)
        except ServiceError as error:
            return _fail(EXIT_UNAVAILABLE, error.detail)


@contextlib.contextmanager
def _events_on_stderr() -> Iterator[None]:
    """Log the app's events (``admin_*`` among them) as lines on stderr, one invocation id for the run."""
    logger = logging.getLogger("shared")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = invocation(None)
    try:
        yield
    finally:
        end_invocation(token)
        logger.setLevel(level)
        logger.removeHandler(handler)


def _fail(status: int, reason: str) -> int:
    print(f"error: {' '.join(reason.split())}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
