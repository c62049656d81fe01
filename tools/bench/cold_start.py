"""Figure 7 and the Argon2id table: import time of the function modules, and what stronger hashing costs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from shared.accounts.passwords import Argon2Parameters, PasswordHasher
from tools.bench.app import PASSWORD
from tools.bench.measuring import Sample, ms, timed
from tools.bench.report import Report
from tools.emulators.azurite import PROJECT_ROOT

FUNCTION_MODULES = ("register", "login", "me", "refresh", "logout", "password")
#: Heavy dependencies, with when a function process imports each (figure 7 times them alone).
HEAVY_DEPENDENCIES = (
    ("azure.functions", "at start"),
    ("azure.data.tables", "at start"),
    ("azure.core.pipeline.transport", "at start, with the Tables SDK"),
    ("requests", "only when a proxy variable is set"),
    ("argon2", "at start"),
    ("jwt", "on the first token"),
    ("cryptography.hazmat.primitives.ciphers.aead", "on the first second-factor secret"),
    ("azure.storage.queue", "on the first queued mail"),
    ("jinja2", "in the mail function"),
    ("azure.identity", "only with identity-based storage"),
)


def cold_start(runs: int, report: Report) -> None:
    """Figure 7: import time of each function module in a fresh interpreter."""

    def import_time(statement: str, bytecode: bool) -> float:
        environment = dict(os.environ)
        if bytecode:
            environment.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(result.stdout)

    def overhead(module: str, *, bytecode: bool = True) -> tuple[float, Sample]:
        """Paired runs (baseline, then the module).

        :returns: the least module time minus the least baseline time (noise only ever adds
            time, so minima estimate the intrinsic cost best), and the paired differences.
        """
        base_statement = "import azure.functions, azure.data.tables"
        for _ in range(2):  # fill the bytecode cache and the OS file cache first
            import_time(f"import {module}", bytecode)
            import_time(base_statement, bytecode)
        pairs = [
            (import_time(f"import {module}", bytecode), import_time(base_statement, bytecode))
            for _ in range(runs)
        ]
        least = min(module_time for module_time, _ in pairs) - min(base_time for _, base_time in pairs)
        return least, Sample([module_time - base_time for module_time, base_time in pairs])

    with tempfile.TemporaryDirectory() as cache:
        os.environ["PYTHONPYCACHEPREFIX"] = cache
        try:
            subprocess.run([sys.executable, "-m", "compileall", "-q", "shared", *FUNCTION_MODULES],
                           cwd=PROJECT_ROOT, check=True, capture_output=True)  # fmt: skip
            base = Sample(
                [import_time("import azure.functions, azure.data.tables", True) for _ in range(runs)]
            )
            report.table(
                "7. Cold start",
                "Import time of each function module in a fresh interpreter, minus that of "
                f"`azure.functions` + `azure.data.tables` alone ({ms(base.median)}), with compiled bytecode "
                f"present, as deployed. {runs} runs each, alternating. The figure is the least module time "
                "minus the least baseline time (noise on a shared machine only ever adds time); the median "
                "of the paired differences follows in brackets.",
            )
            for module in FUNCTION_MODULES:
                least, pairs = overhead(module)
                report.row(
                    f"`{module}` overhead",
                    f"{ms(least)} (paired: {pairs.spread()})",
                    "≤ 30 ms",
                    least <= 0.030,
                )
            classes, class_seconds = dataclasses_created("login")
            report.row(
                "`login`: dataclasses defined at import (settings, rows, results)",
                f"{classes}, {ms(class_seconds)} in all (generating their methods)",
            )
            least, pairs = overhead("login", bytecode=False)
            report.row(
                "`login` overhead without bytecode (compiled at import)",
                f"{ms(least)} (paired: {pairs.spread()})",
            )
            for dependency, when in HEAVY_DEPENDENCIES:
                alone = min(import_time(f"import {dependency}", True) for _ in range(max(3, runs // 3)))
                report.row(f"import `{dependency}` alone, fresh interpreter ({when})", ms(alone))
        finally:
            os.environ.pop("PYTHONPYCACHEPREFIX", None)


_COUNT_DATACLASSES = """
import dataclasses, sys, time
import azure.functions, azure.data.tables
spent, count, process = [0.0], [0], dataclasses._process_class
def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return process(*args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - start
        count[0] += 1
dataclasses._process_class = timed
__import__(sys.argv[1])
print(count[0], spent[0])
"""


def dataclasses_created(module: str) -> tuple[int, float]:
    """How many dataclasses importing ``module`` defines, and the time spent making them (least of 5)."""
    runs = [
        subprocess.run(
            [sys.executable, "-c", _COUNT_DATACLASSES, module],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for _ in range(5)
    ]
    return int(runs[0][0]), min(float(seconds) for _, seconds in runs)


def argon2_tradeoffs(samples: int, report: Report) -> None:
    """How the Argon2id parameters trade security for login latency and memory."""
    report.table(
        "Argon2id parameters: security against latency",
        "Verify time (single thread) for OWASP-equivalent and stronger settings; "
        "the memory cost is also what each concurrent login holds.",
    )
    for memory, time_cost in ((19_456, 2), (47_104, 1), (12_288, 3), (65_536, 3), (131_072, 4)):
        hasher = PasswordHasher(Argon2Parameters(memory_kib=memory, time_cost=time_cost))
        stored = hasher.hash(PASSWORD)
        verify = timed(lambda: hasher.verify(stored, PASSWORD), samples, warmup=1)  # noqa: B023 - called at once
        default = " (default)" if (memory, time_cost) == (19_456, 2) else ""
        report.row(f"m={memory // 1024} MiB, t={time_cost}, p=1{default}", f"{ms(verify.median)} per login")
