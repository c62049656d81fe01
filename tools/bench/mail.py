"""Figures 9 and 9b: what a reset request costs, and whether the mail work tells who has an account."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tools.bench.app import running_app
from tools.bench.measuring import Sample, bootstrap_ratio, interleaved, wait_for
from tools.bench.report import Report
from tools.emulators.azurite import Azurite, free_port


@contextmanager
def mail_server(
    azurite: Azurite, queue_name: str, on_mail: Callable[[], object] = lambda: None
) -> Iterator[dict[str, str]]:
    """An SMTP server on loopback that takes every mail (telling ``on_mail`` of each), while in use.

    :returns: the settings that send the app's mail there, through the queue ``queue_name``.
    """
    from aiosmtpd.controller import Controller  # noqa: PLC0415 - a development dependency

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            on_mail()
            return "250 OK"

    port = free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield {
            "AzureWebJobsStorage": azurite.storage_connection_string,
            "AUTH_MAIL_QUEUE": queue_name,
            "AUTH_MAIL_SMTP_HOST": "127.0.0.1",
            "AUTH_MAIL_SMTP_PORT": str(port),
            "AUTH_MAIL_SMTP_SECURITY": "none",
            "AUTH_MAIL_FROM": "no-reply@example.com",
        }
    finally:
        smtp.stop()


def forgot_cost(azurite: Azurite, samples: int, report: Report) -> None:
    """Figure 9: forgot for an existing and an unknown email, and against a bare queue put."""
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy  # noqa: PLC0415 - on first use

    queue_name = "bench-mail-" + secrets.token_hex(4)
    bare_queue = QueueClient.from_connection_string(
        azurite.storage_connection_string,
        queue_name + "-bare",
        message_encode_policy=TextBase64EncodePolicy(),
    )
    bare_queue.create_queue()
    try:
        with mail_server(azurite, queue_name) as mail, running_app(azurite, extra_settings=mail) as app:
            app.register("known@example.com")
            measured = interleaved(
                {
                    "known": lambda: app.client.post("password/forgot", {"email": "known@example.com"}),
                    "unknown": lambda: app.client.post("password/forgot", {"email": "unknown@example.com"}),
                    "put": lambda: bare_queue.send_message(
                        '{"kind":"password_reset","email":"a@example.com"}'
                    ),
                },
                samples,
            )
    finally:
        bare_queue.delete_queue()
    known, unknown, put = measured["known"], measured["unknown"], measured["put"]
    ratio = known.median / unknown.median
    overhead = known.median / put.median
    report.table(
        "9. Password reset requests",
        "POST /api/password/forgot over HTTP for an email with an account and one without (interleaved), "
        "and a bare azure-storage-queue put of the same size. The HTTP function only queues; the mail "
        "function, running in the same host, reads the account and sends meanwhile.",
    )
    report.row("forgot, existing email", known.spread())
    report.row("forgot, unknown email", unknown.spread())
    report.row("**existing / unknown, ratio of medians**", f"{ratio:.3f}", "0.90-1.10", 0.90 <= ratio <= 1.10)
    report.row("bare queue put (azure-storage-queue)", put.spread())
    report.row("forgot / bare queue put", f"{overhead:.2f}")


def mail_timing(azurite: Azurite, pairs: int, report: Report) -> None:
    """Figure 9b: does the mail function's work tell which emails have accounts?

    Interleaved pairs over HTTP, with the mail function running in the same
    host and the product's mail delay (``AUTH_MAIL_DELAY_SECONDS`` default):
    a forgot request for an email with an account, then at once a cheap probe
    request; the same for an email without one. Every email is used once, so
    the per-address mail limit drops nothing and each known email costs a real
    send. Ratios are of medians, with a bootstrap 95 % interval.
    """
    sent: list[int] = []
    values: dict[str, list[float]] = {"known": [], "unknown": [], "after known": [], "after unknown": []}

    def timed_once(action: Callable[[], object]) -> float:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started

    queue_name = "bench-timing-" + secrets.token_hex(4)
    with (
        mail_server(azurite, queue_name, on_mail=lambda: sent.append(1)) as mail,
        running_app(azurite, extra_settings=mail) as app,
    ):
        known = [f"known-{i}@example.com" for i in range(pairs + 3)]
        for email in known:
            app.register(email)
        wait_for(lambda: len(sent) >= len(known))  # the verification mails go out before the window
        before = len(sent)

        def probe() -> object:  # a cheap request to the same worker
            return app.client.post("login", {}, expect=400)

        for index in range(pairs + 3):  # the first three pairs warm up
            order = ("known", "unknown") if index % 2 == 0 else ("unknown", "known")
            for kind in order:
                email = known[index] if kind == "known" else f"unknown-{index}@example.com"
                body = {"email": email}
                took = timed_once(lambda body=body: app.client.post("password/forgot", body, expect=202))  # type: ignore[misc]
                after = timed_once(probe)
                if index >= 3:
                    values[kind].append(took)
                    values[f"after {kind}"].append(after)
        wait_for(lambda: len(sent) - before >= len(known))  # the delayed reset mails go out
        resets = len(sent) - before
    samples = {name: Sample(series) for name, series in values.items()}
    report.table(
        "9b. Mail timing: forgot for existing and unknown emails, and the request right after",
        f"{pairs} interleaved pairs over HTTP (order alternating), the mail function running in the same "
        "host with the default AUTH_MAIL_DELAY_SECONDS (1-5 s) and doing the same work for unknown "
        "emails short of sending; after each forgot, a probe request (POST /api/login with an empty "
        f"body, 400) at once. Reset mails sent: {resets} for {pairs + 3} existing emails.",
    )
    for name in ("known", "unknown", "after known", "after unknown"):
        label = {"known": "forgot, existing email", "unknown": "forgot, unknown email"}.get(
            name, f"probe {name}"
        )
        report.row(label.replace("after known", "after existing"), samples[name].spread())
    for first, second, label in (
        ("known", "unknown", "forgot"),
        ("after known", "after unknown", "probe after forgot"),
    ):
        ratio = samples[first].median / samples[second].median
        low, high = bootstrap_ratio(values[first], values[second])
        report.row(
            f"**{label}: existing / unknown, ratio of medians**",
            f"{ratio:.3f} (95 % interval {low:.3f}-{high:.3f})",
            "1.00 ± 0.05",
            0.95 <= ratio <= 1.05,
        )
