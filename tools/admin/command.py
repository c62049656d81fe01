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
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from shared.accounts.service import account_service
from shared.errors import InvalidRequest, NotFound, ServiceError, SettingError
from shared.events import end_invocation, invocation
from shared.operations.admin import AccountAdmin, MfaReset, Reencryption, is_email
from shared.passkeys import management as passkey_management
from shared.passkeys.service import Passkeys
from shared.passkeys.service import passkeys as passkey_service
from shared.settings import get_settings
from shared.settings.signing import (
    SigningAlgorithm,
    generate_private_key,
    parse_private_key,
    public_key_pem,
)
from shared.tokens.key_history import key_records
from tools.devhost.local_settings import PROJECT_ROOT, apply_local_settings

EXIT_NOT_DONE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

Command = Callable[[AccountAdmin, argparse.Namespace], int]


def show(admin: AccountAdmin, args: argparse.Namespace) -> int:
    summary = admin.summary(admin.find(args.account))
    if args.json:
        _print_json(summary)
        return 0
    lockout, mfa = summary["lockout"], summary["mfa"]
    disabled = "no"
    if summary["disabled"]:
        disabled = f"yes: {summary['disabledReason']}" if summary["disabledReason"] else "yes"
    _print_fields(
        [
            ("user id", summary["userId"]),
            ("email", summary["email"]),
            ("email verified", _yes_no(summary["emailVerified"])),
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
        _print_json({"userId": account.user_id, "sessions": found})
    elif not found:
        print(f"{account.user_id} has no live sessions")
    else:
        rows = [(s["id"], s["createdAt"], s["lastSeenAt"], s["userAgent"] or "-") for s in found]
        _print_table(("ID", "CREATED", "LAST SEEN", "USER AGENT"), rows)
    return 0


def disable(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.disable(admin.find(args.account), args.reason)
    who = _who(account.user_id, account.email)
    _report(
        args,
        f"disabled {who}: its tokens are refused, its password no longer logs in",
        userId=account.user_id,
        disabled=True,
        reason=args.reason,
    )
    return 0


def enable(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    changed = admin.enable(account)
    who = _who(account.user_id, account.email)
    message = f"enabled {who}; its old sessions stay ended" if changed else f"{who} was not disabled"
    _report(args, message, userId=account.user_id, disabled=False, changed=changed)
    return 0


def unlock(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    cleared = admin.unlock(account)
    who = _who(account.user_id, account.email)
    if cleared is None:
        _report(
            args, f"{who} was not locked (no failed logins on record)", userId=account.user_id, changed=False
        )
    else:
        message = f"unlocked {who}: cleared {cleared.consecutive_failures} consecutive failed logins"
        _report(
            args, message, userId=account.user_id, changed=True, failedLogins=cleared.consecutive_failures
        )
    return 0


def revoke(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    try:
        admin.revoke(account, args.session)
    except NotFound:
        raise NotFound(f"no such session {args.session!r} of {account.user_id}") from None
    who = _who(account.user_id, account.email)
    message = f"ended session {args.session} of {who}" if args.session else f"ended every session of {who}"
    _report(args, message, userId=account.user_id, revoked=args.session or "all")
    return 0


def passkeys(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    found = [
        passkey_management.passkey_json(p) for p in passkey_management.list_passkeys(_passkeys(), account)
    ]
    if args.json:
        _print_json({"userId": account.user_id, "passkeys": found})
    elif not found:
        print(f"{account.user_id} has no passkeys")
    else:
        rows = [
            (p["id"], p["name"], p["createdAt"], p["lastUsedAt"] or "-", p["provider"] or "-") for p in found
        ]
        _print_table(("ID", "NAME", "CREATED", "LAST USED", "PROVIDER"), rows)
    return 0


def remove_passkey(admin: AccountAdmin, args: argparse.Namespace) -> int:
    account = admin.find(args.account)
    passkey_management.remove_as_operator(_passkeys(), account, args.passkey)
    who = _who(account.user_id, account.email)
    _report(
        args, f"removed passkey {args.passkey} of {who}; the owner is told by mail", userId=account.user_id
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
    who = _who(account.user_id, account.email)
    messages = {
        MfaReset.REMOVED: f"removed the second factor of {who}: the password alone logs in (owner notified)",
        MfaReset.PENDING_REMOVED: f"{who} had no second factor on; removed an unconfirmed enrolment",
        MfaReset.NONE: f"{who} has no second factor",
    }
    _report(args, messages[outcome], userId=account.user_id, secondFactor=outcome.value)
    return 0


def export(admin: AccountAdmin, args: argparse.Namespace) -> int:
    _print_json(admin.export(admin.find(args.account)))
    return 0


def delete(admin: AccountAdmin, args: argparse.Namespace) -> int:
    try:
        account = admin.find(args.account)
    except NotFound:
        if is_email(args.account) or not admin.delete_orphan_alias(args.account.strip()):
            raise
        _report(args, f"deleted the alias row left of {args.account.strip()}", userId=args.account, rows=1)
        return 0
    who = _who(account.user_id, account.email)
    if not args.yes:
        print(
            f'Delete {who} and every row of it? This cannot be undone. Type "yes": ', end="", file=sys.stderr
        )
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not sys.stdin.isatty():
            print(file=sys.stderr)  # the answer was not echoed: end the prompt's line
        if answer.strip() != "yes":
            print("error: not confirmed; nothing deleted", file=sys.stderr)
            return EXIT_NOT_DONE
    rows = admin.delete(account)
    _report(args, f"deleted {who}: {rows} rows", userId=account.user_id, deleted=True, rows=rows)
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
    _report(
        args,
        message,
        examined=outcome.examined,
        resealed=outcome.resealed,
        unreadable=outcome.unreadable,
        dryRun=args.dry_run,
    )
    return EXIT_NOT_DONE if outcome.unreadable else 0


def keys_new(args: argparse.Namespace) -> int:
    """Print a new key pair: the private key for Key Vault, the public half to publish first."""
    algorithm = SigningAlgorithm(args.algorithm)
    private = generate_private_key(algorithm)
    key = parse_private_key(private, algorithm, setting="new key")
    public = public_key_pem(key.public.key)
    if args.json:
        _print_json({"kid": key.kid, "algorithm": str(algorithm), "privateKey": private, "publicKey": public})
        return 0
    print(f"# kid {key.kid} ({algorithm})")
    print("# 1. AUTH_NEXT_SIGNING_PUBLIC_KEY (publish now; it signs nothing yet):")
    print(public.strip())
    print("# on one line:", _one_line(public))
    print("# 2. AUTH_SIGNING_PRIVATE_KEY (Key Vault; set it when promoting the key, not before):")
    print(private.strip())
    print("# on one line:", _one_line(private))
    return 0


def keys_status(args: argparse.Namespace) -> int:
    """What signs, what the key set publishes, and since when (as the app's instances recorded it)."""
    settings = get_settings()
    keys = settings.signing.keys
    history = key_records(settings.storage)
    signing = keys.current if keys.algorithm.asymmetric else None
    roles = [("current", keys.current.public if keys.current else None), ("next", keys.next)]
    roles += [("previous", key) for key in keys.previous]
    published: list[dict[str, str]] = []
    for role, key in roles:
        if key is None or any(entry["kid"] == key.kid for entry in published):
            continue
        record = history.get(key.kid)
        published.append(
            {
                "role": role if role != "current" or signing is not None else "configured (not signing)",
                "kid": key.kid,
                "algorithm": str(key.algorithm),
                "publishedSince": _since(record.published_since if record else None),
                "signingSince": _since(record.signing_since if record else None),
            }
        )
    status: dict[str, Any] = {
        "algorithm": str(keys.algorithm),
        "signs": signing.kid if signing else "AUTH_SIGNING_KEY (HMAC, never published)",
        "acceptsHs256": keys.accept_hs256,
        "problem": str(keys.problem) if keys.problem else None,
        "jwksMaxAgeSeconds": settings.signing.jwks_max_age,
        "published": published,
        "currentPublicKey": public_key_pem(signing.public.key) if signing else None,
    }
    if args.json:
        _print_json(status)
        return 0
    _print_fields(
        [
            ("algorithm", str(keys.algorithm)),
            ("signs with", str(status["signs"])),
            ("HS256 accepted", _yes_no(keys.accept_hs256)),
            ("key set max-age", f"{settings.signing.jwks_max_age} s"),
            ("problem", str(keys.problem) if keys.problem else "-"),
        ]
    )
    if published:
        print()
        rows = [
            [e["role"], e["kid"], e["algorithm"], e["publishedSince"], e["signingSince"]] for e in published
        ]
        _print_table(["role", "kid", "alg", "published since", "signing since"], rows)
    if signing is not None:
        print("\n# the current public key (for AUTH_PREVIOUS_SIGNING_PUBLIC_KEYS after promoting the next):")
        print(_one_line(str(status["currentPublicKey"])))
    return 0


def _since(instant: Any) -> str:
    return instant.isoformat().replace("+00:00", "Z") if instant is not None else "-"


def _one_line(pem: str) -> str:
    return pem.strip().replace("\n", "\\n")


KEY_COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "new": (keys_new, "print a new private key for Key Vault and its public half to publish first"),
    "status": (keys_status, "what signs, what is published, since when"),
}


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


def _report(args: argparse.Namespace, message: str, **fields: Any) -> None:
    if args.json:
        _print_json({name: value for name, value in fields.items() if value is not None})
    else:
        print(message)


def _who(user_id: str, email: str) -> str:
    return f"{user_id} ({email})"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


def _print_fields(fields: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name:<{width}}  {value}")


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
