"""POST /api/refresh: a valid, unrevoked token in, a fresh token out (200)."""

import azure.functions as func

from shared import http
from shared.accounts import account_service
from shared.authentication import authenticated_account


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    return http.session_response(account_service().refresh(account))
