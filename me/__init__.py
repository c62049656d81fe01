"""GET /api/me: the caller's account. DELETE /api/me {"password"[,"code"]}: delete it (204)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import authenticated_account
from shared.login.reauthentication import delete_own_account


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    if req.method.upper() == "DELETE":
        body = http.read_json_object(req)
        password, code = http.string_field(body, "password"), http.optional_string_field(body, "code")
        delete_own_account(account_service(), account, password, code=code)
        return http.no_content()
    return http.profile_response(account)
