"""POST /api/mfa/totp/confirm {"code"}: TOTP on; recovery codes (shown once) and a new token."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import authenticated_account
from shared.mfa import flows


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    code = http.string_field(http.read_json_object(req), "code")
    recovery_codes, session = flows.confirm_enrolment(account_service(), account, code)
    return http.json_response({"recoveryCodes": recovery_codes, **http.session_body(session)})
