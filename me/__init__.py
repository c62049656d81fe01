"""GET /api/me: the caller's account. DELETE /api/me {"password"}: delete it (204)."""

import azure.functions as func

from shared import http
from shared.accounts import account_service
from shared.authentication import authenticated_account


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    if req.method.upper() == "DELETE":
        password = http.string_field(http.read_json_object(req), "password")
        account_service().delete_account(account, password)
        return http.no_content()
    return http.profile_response(account)
