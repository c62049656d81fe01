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
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from shared.accounts.passwords import Argon2Parameters, PasswordHasher
from tools.bench import importer, pinned, profile
from tools.bench.app import PASSWORD, running_app, stored_login_hash
from tools.bench.cold_start import argon2_tradeoffs, cold_start
from tools.bench.concurrency import concurrency, gate_cost, memory
from tools.bench.growth import growth
from tools.bench.mail import forgot_cost, mail_timing
from tools.bench.measuring import timed
from tools.bench.overhead import login_and_register_overhead
from tools.bench.passkeys import passkey_cost
from tools.bench.report import Report, machine
from tools.bench.round_trips import round_trips
from tools.bench.second_factor import second_factor_cost
from tools.bench.tokens import signed_token_verification, token_verification
from tools.emulators.azurite import PROJECT_ROOT, Azurite

STEPS = (
    "overhead",
    "concurrency",
    "growth",
    "reset",
    "mail-timing",
    "mfa",
    "passkeys",
    "round-trips",
    "tokens",
    "signed-tokens",
    "profile",
    "cold-start",
    "import",
)
#: The steps that need the shared Azurite and local host.
APP_STEPS = frozenset({"overhead", "concurrency", "growth", "reset", "mail-timing", "mfa", "passkeys"})


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
            pinned.pinned_concurrency(
                lambda: hasher.verify(login_hash, PASSWORD),
                measured.shares,
                report,
                duration=duration,
                samples=samples,
            )
            memory(measured, report)
            print("5c. the gate", file=sys.stderr)
            gate_cost(app, duration, report)
        if "growth" in wanted:
            print("4. growth", file=sys.stderr)
            growth(app, samples, (1_000, 5_000) if quick else (1_000, 50_000), report)
        if "reset" in wanted:
            print("9. password reset requests", file=sys.stderr)
            forgot_cost(azurite, samples, report)
        if "mail-timing" in wanted:
            print("9b. mail timing", file=sys.stderr)
            mail_timing(azurite, 60 if quick else 240, report)
        if "mfa" in wanted:
            print("10. login with a second factor", file=sys.stderr)
            second_factor_cost(app, samples, report)
        if "passkeys" in wanted:
            print("13. sign-in with a passkey", file=sys.stderr)
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

    findings = keep_findings(args.output)
    report = Report(
        [
            *([] if findings else ["# Performance", ""]),
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
    if "signed-tokens" in wanted:
        print("6b. signed token verification", file=sys.stderr)
        signed_token_verification(500 if args.quick else 5_000, report)
    if "profile" in wanted:
        print("12. where the CPU of a request goes", file=sys.stderr)
        profile.report_profile(10 if args.quick else 40, report)
    if "cold-start" in wanted:
        print("7. cold start", file=sys.stderr)
        cold_start(5 if args.quick else 15, report)
        argon2_tradeoffs(5 if args.quick else 15, report)
    if "import" in wanted:
        print("11. import", file=sys.stderr)
        importer.report_import(
            report,
            args.import_accounts or (5_000 if args.quick else 20_000),
            100_000 if args.quick else 1_000_000,
            len(os.sched_getaffinity(0)),
        )

    text = "\n".join(report.lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(findings + text, encoding="utf-8")
    print(text)
    return 0


#: In the output file, what stands above this line is written by people (what the figures say) and kept.
FIGURES_MARKER = "<!-- make bench writes everything below this line; what is above it is kept -->"


def keep_findings(output: Path) -> str:
    """The hand-written part of ``output`` (its title and findings) above :data:`FIGURES_MARKER`, with the
    marker, or nothing when it has none (then the bench writes the title itself)."""
    if not output.exists():
        return ""
    existing = output.read_text(encoding="utf-8")
    head, marker, _ = existing.partition(FIGURES_MARKER)
    return head + marker + "\n\n" if marker else ""


if __name__ == "__main__":
    sys.exit(main())
