"""The language-worker side of the local host: loading a function folder and invoking it.

The Functions host does not run Python itself: it hands each function to the
Python language worker, which imports the folder's script, checks its
signature against ``function.json`` and calls it. This package does that part,
following the worker's source (Azure/azure-functions-python-worker 4.x,
``azure_functions_worker/``; the same code ships for the function.json model
as ``azure-functions-runtime-v1``, ``azure_functions_runtime_v1/``):

- :mod:`.loader`: which worker loads the functions, and the port of ``loader.py``
  ``load_function``: the function app's folders form the namespace package
  ``__app__``; a folder's script is imported as ``__app__.<folder>``
  (``__app__.<folder>.<module>`` for a ``scriptFile`` other than ``__init__.py``),
  and ``entryPoint`` (default ``main``) must be a callable in it;
- :mod:`.signature_checks`: the port of ``functions.py`` ``Registry.add_function``,
  every load-time check in its order and with its messages;
- :mod:`.functions`: a loaded function and the port of ``dispatcher.py``
  ``_handle__invocation_request``, which calls it;
- :mod:`.http_response`: an ``http`` output as the worker encodes it for the host;
- :mod:`.runtime_v1`: every call to Microsoft's ``azure_functions_runtime_v1``.

Microsoft's ``azure-functions-runtime-v1`` (the worker Azure runs this model on for
Python 3.13+) installs only on 3.13 and newer, and this project supports 3.11 and up;
see docs/local-host.md. On 3.13+, with release :data:`RUNTIME_V1_VERSION` installed
(requirements.txt pins it), :func:`load_function` loads through its
``loader.load_function`` and ``functions.Registry`` and calls through its
``native_invocation`` module: that is the default, and what the suite runs. The
port (this package's own loader) runs on 3.11 and 3.12, or with ``DEVHOST_WORKER=port``;
``tests/devhost/test_worker.py`` loads a table of probe functions through both and requires
the same answers.
"""

from tools.devhost.worker.functions import (
    Binding,
    FunctionLoadError,
    Invocation,
    InvocationContext,
    LoadedFunction,
)
from tools.devhost.worker.http_response import HttpResponseData, encode_http_response
from tools.devhost.worker.loader import (
    PORT,
    RUNTIME_V1,
    WORKER_SETTING,
    WorkerUnavailable,
    failed_function,
    load_function,
    use_runtime_v1,
    worker_description,
)
from tools.devhost.worker.runtime_v1 import RUNTIME_V1_VERSION, runtime_v1_problem

__all__ = [
    "PORT",
    "RUNTIME_V1",
    "RUNTIME_V1_VERSION",
    "WORKER_SETTING",
    "Binding",
    "FunctionLoadError",
    "HttpResponseData",
    "Invocation",
    "InvocationContext",
    "LoadedFunction",
    "WorkerUnavailable",
    "encode_http_response",
    "failed_function",
    "load_function",
    "runtime_v1_problem",
    "use_runtime_v1",
    "worker_description",
]
