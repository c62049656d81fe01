"""POST /api/password {"currentPassword","newPassword"}: change it, revoke old tokens, return a new one."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import authenticated_account


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    body = http.read_json_object(req)
    current, new = http.string_field(body, "currentPassword"), http.string_field(body, "newPassword")
    return http.session_response(account_service().change_password(account, current, new))
