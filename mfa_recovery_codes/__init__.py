"""POST /api/mfa/recovery-codes {"password","code"}: a new set of recovery codes; the old set stops."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import authenticated_account
from shared.mfa import flows


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account, body = authenticated_account(req), http.read_json_object(req)
    password, code = http.string_field(body, "password"), http.string_field(body, "code")
    codes = flows.regenerate_recovery_codes(account_service(), account, password, code)
    return http.json_response({"recoveryCodes": codes})
