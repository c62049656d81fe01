"""POST /api/password {"currentPassword","newPassword"}: change it, revoke old tokens, return a new one."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import request_token


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    service = account_service()
    account, verified = service.authenticate_session(request_token(req))
    body = http.read_json_object(req)
    current, new = http.string_field(body, "currentPassword"), http.string_field(body, "newPassword")
    return http.session_response(service.change_password(account, current, new, amr=verified.amr))
