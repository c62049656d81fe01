"""POST /api/logout: revoke every token of the caller's account issued so far (204)."""

import azure.functions as func

from shared import http
from shared.accounts import account_service
from shared.authentication import authenticated_account


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    account_service().log_out(account)
    return http.no_content()
