"""The gate: who is calling? One line in any function of the app.

.. code-block:: python

    from shared import http
    from shared.http.gate import authenticated_account

    @http.handles_problems
    def main(req: func.HttpRequest) -> func.HttpResponse:
        account = authenticated_account(req)  # 401 invalid_token if not
        ...

The token is read from ``X-ZUMO-AUTH`` (what the Mobile Apps and Mobile
Services client SDKs send) or from ``Authorization: Bearer``.
"""

from __future__ import annotations

import azure.functions as func

from shared.accounts.service import account_service
from shared.accounts.store import Account

__all__ = ["authenticated_account", "request_token"]

ZUMO_AUTH_HEADER = "X-ZUMO-AUTH"


def request_token(req: func.HttpRequest) -> str | None:
    """Return the token a request carries, or ``None``."""
    zumo = str(req.headers.get(ZUMO_AUTH_HEADER) or "").strip()
    if zumo:
        return zumo
    authorization = str(req.headers.get("Authorization") or "").strip()
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def authenticated_account(req: func.HttpRequest, *, require_mfa: bool = False) -> Account:
    """Return the account of the request's token.

    With ``require_mfa``, a session signed in without a second factor is
    refused with 403 ``mfa_required``, for functions that need one.

    :raises InvalidToken: (401 ``invalid_token`` with ``WWW-Authenticate: Bearer``)
        missing, malformed, oversized, forged, expired, not yet valid, wrong
        issuer or audience, deleted account, or revoked session.
    :raises StorageUnavailable: storage could not be reached.
    :raises MfaRequired: ``require_mfa`` and the session has no second factor.
    :raises SettingError: the app is misconfigured.
    """
    return account_service().authenticate(request_token(req), require_mfa=require_mfa)
