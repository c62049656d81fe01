"""App settings as the Functions host's configuration reads them.

Names compare as .NET configuration compares them (``__`` is ``:``, case
ignored); ``%name%`` in a binding resolves to that setting
(``NameResolverExtensions.ResolveWholeString`` in Azure/azure-functions-host);
``AzureWebJobs.<name>.Disabled`` disables a function
(``HostListenerFactory.IsDisabled`` in Azure/azure-webjobs-sdk). A binding that
does not resolve puts its function in error: :class:`FunctionIndexingError`.
"""

from __future__ import annotations

from collections.abc import Mapping


class FunctionIndexingError(Exception):
    """Why the host refuses to index a function (it logs this and does not run the function)."""


def config_key(name: str) -> str:
    """An app setting name as .NET configuration compares it: ``__`` is ``:``, case ignored."""
    return name.replace("__", ":").lower()


def app_setting(environ: Mapping[str, str], name: str) -> str | None:
    """Look ``name`` (``A:B`` or ``A__B``) up in the app settings as the host's configuration does."""
    if name in environ:
        return environ[name]
    wanted = config_key(name)
    for key, value in environ.items():
        if config_key(key) == wanted:
            return value
    return None


def resolve_setting_tokens(text: str, environ: Mapping[str, str]) -> str:
    """Replace every ``%name%`` in ``text`` by that app setting, as ``ResolveWholeString`` does.

    :raises FunctionIndexingError: with the host's message, when a setting is not defined or a
        ``%`` is not closed.
    """
    resolved: list[str] = []
    position = 0
    while (start := text.find("%", position)) >= 0:
        end = text.find("%", start + 1)
        if end < 0:
            raise FunctionIndexingError(f"The '%' at position {start} does not have a closing '%'")
        name = text[start + 1 : end]
        value = app_setting(environ, name)
        if value is None:
            raise FunctionIndexingError(f"'%{name}%' does not resolve to a value.")
        resolved += [text[position:start], value]
        position = end + 1
    return "".join([*resolved, text[position:]])


def is_disabled(function_name: str, environ: Mapping[str, str]) -> bool:
    """Whether ``AzureWebJobs.<name>.Disabled`` or ``AzureWebJobs_<name>_Disabled`` disables a function.

    As ``HostListenerFactory.IsDisabled``: set to ``1`` or ``true`` (any case), read from
    the app settings as configuration reads them (names in any case).
    """
    for name in (f"AzureWebJobs.{function_name}.Disabled", f"AzureWebJobs_{function_name}_Disabled"):
        value = app_setting(environ, name)
        if value is not None and value.strip().lower() in ("1", "true"):
            return True
    return False
