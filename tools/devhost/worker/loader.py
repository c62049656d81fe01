"""Which worker loads the functions, and the port of the worker's loader.

``DEVHOST_WORKER`` chooses between Microsoft's package (:mod:`.runtime_v1`) and
the port (see docs/local-host.md). The port follows ``loader.py``
``load_function``: the function app's folders form the namespace package
``__app__``; a folder's script is imported as ``__app__.<folder>``
(``__app__.<folder>.<module>`` for a ``scriptFile`` other than ``__init__.py``),
and ``entryPoint`` (default ``main``) must be a callable in it; then
:mod:`.signature_checks` checks it against ``function.json``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tools.devhost.worker.functions import Binding, FunctionLoadError, Invocation, LoadedFunction
from tools.devhost.worker.runtime_v1 import (
    RUNNING_PYTHON,
    RUNTIME_V1_VERSION,
    load_with_runtime_v1,
    runtime_v1_problem,
)
from tools.devhost.worker.signature_checks import check_signature

#: The namespace package the worker imports function folders under.
APP_NAMESPACE = "__app__"
DEFAULT_SCRIPT_FILE = "__init__.py"
DEFAULT_ENTRY_POINT = "main"
#: Selects Microsoft's worker library where it can run (Python 3.13+, package installed).
WORKER_SETTING = "DEVHOST_WORKER"
RUNTIME_V1 = "runtime-v1"
#: Selects this module's own loader (the port) even where the package could run.
PORT = "port"


def _register_app_folder(root: Path) -> None:
    """``loader.install`` and ``register_function_dir``: ``__app__`` spans the app's folder."""
    package = sys.modules.get(APP_NAMESPACE)
    if package is None:
        spec = importlib.machinery.ModuleSpec(APP_NAMESPACE, None, is_package=True)
        spec.submodule_search_locations = []
        package = importlib.util.module_from_spec(spec)
        package.__path__ = []
        sys.modules[APP_NAMESPACE] = package
    if str(root) not in package.__path__:
        package.__path__.append(str(root))
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # the worker runs with the app's folder on its path


def _import_entry_point(name: str, folder: Path, script_file: str, entry_point: str) -> Callable[..., Any]:
    """``loader.load_function``: import ``__app__.<folder>[.<module>]`` and take its entry point."""
    _register_app_folder(folder.parent)
    script = folder / script_file
    module_name, extension = os.path.splitext(script.name)
    if extension != ".py":
        raise FunctionLoadError(name, f"invalid Python filename {script_file}")
    parts = [APP_NAMESPACE, *script.relative_to(folder.parent).parts[:-1]]
    if module_name.lower() != "__init__":
        parts.append(module_name)
    module = importlib.import_module(".".join(parts))
    entry = getattr(module, entry_point, None)
    if entry is None or not callable(entry):
        raise FunctionLoadError(name, f"function {entry_point}() is not present in {script.name}")
    loaded: Callable[..., Any] = entry
    return loaded


class WorkerUnavailable(RuntimeError):
    """``DEVHOST_WORKER=runtime-v1`` was asked for where Microsoft's worker cannot run."""


def use_runtime_v1(environ: Mapping[str, str] | None = None) -> bool:
    """Whether to load and call functions through Microsoft's ``azure-functions-runtime-v1``.

    ``DEVHOST_WORKER`` chooses: ``runtime-v1`` (the package, or an error where it cannot
    run), ``port`` (this module's own loader). Unset, the package is used wherever it can
    run (Python 3.13 or newer with the pinned release installed: what Azure runs for such
    apps), and the port elsewhere.

    :raises WorkerUnavailable: ``runtime-v1`` was asked for and cannot be used.
    """
    environ = os.environ if environ is None else environ
    asked = (environ.get(WORKER_SETTING) or "").strip().lower()
    if asked not in ("", RUNTIME_V1, PORT):
        raise WorkerUnavailable(f"{WORKER_SETTING} must be {RUNTIME_V1!r} or {PORT!r}, not {asked!r}")
    if asked == PORT:
        return False
    problem = runtime_v1_problem()
    if problem is not None and asked == RUNTIME_V1:
        raise WorkerUnavailable(f"{WORKER_SETTING}={RUNTIME_V1}: {problem}")
    if problem is not None and RUNNING_PYTHON >= (3, 13):
        logging.getLogger("devhost.worker").warning("%s: using the local host's own loader", problem)
    return problem is None


def worker_description(environ: Mapping[str, str] | None = None) -> str:
    """One line for the start banner: which Python and which worker load the functions."""
    python = f"Python {platform.python_version()} ({sys.executable})"
    if use_runtime_v1(environ):
        return f"{python}, Microsoft's worker azure-functions-runtime-v1 {RUNTIME_V1_VERSION}"
    return f"{python}, the local host's port of the Python worker's loader"


def load_function(
    folder: Path, config: Mapping[str, Any], trigger_type: str, *, runtime_v1: bool | None = None
) -> LoadedFunction:
    """Load ``folder`` (its ``function.json`` is ``config``) as the worker's function load request does.

    ``runtime_v1`` chooses the loader: Microsoft's package (``True``), the port
    (``False``), or as :func:`use_runtime_v1` says (``None``).

    :raises FunctionLoadError: what the worker answers for a function it cannot load.
    """
    name = folder.name
    bindings = [Binding.from_json(b) for b in config.get("bindings", [])]
    trigger = next(b for b in bindings if b.type == trigger_type)
    script_file = str(config.get("scriptFile") or DEFAULT_SCRIPT_FILE)
    entry_point = str(config.get("entryPoint") or DEFAULT_ENTRY_POINT)
    if use_runtime_v1() if runtime_v1 is None else runtime_v1:
        return load_with_runtime_v1(folder, bindings, trigger, script_file, entry_point)
    main = _import_entry_point(name, folder, script_file, entry_point)
    outputs, has_return, return_type, requires_context = check_signature(name, main, bindings)
    return LoadedFunction(
        name=name,
        directory=folder,
        main=main,
        trigger=trigger,
        outputs=outputs,
        has_return=has_return,
        return_type=return_type,
        requires_context=requires_context,
    )


def failed_function(
    folder: Path, config: Mapping[str, Any], trigger_type: str, error: Exception
) -> LoadedFunction:
    """A function the worker could not load: the host keeps it (its route, its listener), and every
    invocation fails with the load error (``GrpcWorkerChannel``'s function load errors)."""
    bindings = [Binding.from_json(b) for b in config.get("bindings", [])]
    trigger = next(b for b in bindings if b.type.lower() == trigger_type.lower())
    message = f"Worker failed to load function: '{folder.name}': {type(error).__name__}: {error}"

    def fail(value: Any, invocation_id: str) -> Invocation:
        raise RuntimeError(message)

    return LoadedFunction(folder.name, folder, fail, trigger, (), True, None, False, _native=fail)
