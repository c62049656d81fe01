"""Find the Python interpreters `make` builds its environments with.

    python3 tools/find_python.py worker   # the newest Python 3.13+ (Microsoft's worker runs there), else
                                          # the newest 3.11+; prints its path
    python3 tools/find_python.py port     # the oldest Python 3.11 or 3.12 (where the local host's port
                                          # of the worker runs); prints nothing when there is none

Azure runs Python 3.13 function apps on the worker package ``azure-functions-runtime-v1``, which
installs only on 3.13 and newer, so that is the Python `make run` and `make test` prefer. Looked
at, in order: ``$PYTHON`` when set, ``python3.N`` and ``python3`` on the PATH, pyenv's versions
(``$PYENV_ROOT``, ``pyenv root`` or ``~/.pyenv``), and ``/usr/local/bin``, ``/usr/bin``. Each
candidate is run once: a pyenv shim for a version pyenv does not select answers "command not
found", and is passed over. Runs on any Python 3, so that `make` can call it before a venv exists.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys

#: Microsoft's worker package for the function.json model needs this Python.
WORKER_PYTHON = (3, 13)
#: The oldest Python the project supports.
OLDEST = (3, 11)
_PROBE = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"


def _candidates() -> list[str]:
    found: list[str] = []
    if os.environ.get("PYTHON"):
        found.append(os.environ["PYTHON"])
    for minor in range(20, 10, -1):
        found.append(f"python3.{minor}")
    found.append("python3")
    roots = [os.environ.get("PYENV_ROOT", "")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            asked = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=10, check=False)
            roots.append(asked.stdout.strip())
    roots.append(os.path.expanduser("~/.pyenv"))
    for root in filter(None, roots):
        found.extend(
            sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3.*")), reverse=True)
        )
    for folder in ("/usr/local/bin", "/usr/bin"):
        found.extend(sorted(glob.glob(os.path.join(folder, "python3.*")), reverse=True))
    return found


def _version(command: str) -> tuple[int, int] | None:
    path = shutil.which(command) if os.sep not in command else command
    if not path or not os.access(path, os.X_OK) or path.endswith("-config"):
        return None
    try:
        done = subprocess.run([path, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    major, minor = done.stdout.strip().split(".")
    return int(major), int(minor)


def find(kind: str) -> str | None:
    """The path of the interpreter for ``kind`` (``worker`` or ``port``), or ``None``."""
    seen: set[str] = set()
    best: tuple[tuple[int, int], str] | None = None
    for command in _candidates():
        path = shutil.which(command) if os.sep not in command else command
        if not path:
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        version = _version(path)
        if version is None or version < OLDEST:
            continue
        if kind == "port" and version >= WORKER_PYTHON:
            continue
        if os.environ.get("PYTHON") and command == os.environ["PYTHON"] and kind == "worker":
            return path  # asked for by name: take it as it is
        better = version > best[0] if best and kind == "worker" else version < best[0] if best else True
        if better:
            best = (version, path)
    return None if best is None else best[1]


def main(argv: list[str]) -> int:
    kind = argv[1] if len(argv) > 1 else "worker"
    if kind not in ("worker", "port"):
        print(__doc__, file=sys.stderr)
        return 2
    path = find(kind)
    if path is not None:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
