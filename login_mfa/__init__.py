"""POST /api/login/mfa {"mfaToken","code"} or {"mfaToken","recoveryCode"}: a login's second step (200)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.login.second_factor import log_in_with_code


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    body = http.read_json_object(req)
    mfa_token = http.string_field(body, "mfaToken")
    code, recovery_code = (
        http.optional_string_field(body, "code"),
        http.optional_string_field(body, "recoveryCode"),
    )
    session = log_in_with_code(account_service(), mfa_token, code=code, recovery_code=recovery_code)
    return http.session_response(session)
