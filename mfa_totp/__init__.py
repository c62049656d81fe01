"""POST /api/mfa/totp {"password"}: start enrolling an authenticator app (200).
DELETE /api/mfa/totp {"password","code"}: turn the second factor off (204)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import authenticated_account
from shared.mfa import flows


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account, body = authenticated_account(req), http.read_json_object(req)
    password = http.string_field(body, "password")
    if req.method.upper() == "DELETE":
        flows.disable(account_service(), account, password, http.string_field(body, "code"))
        return http.no_content()
    enrolment = flows.start_enrolment(account_service(), account, password)
    return http.json_response(
        {"secret": enrolment.secret, "otpauthUri": enrolment.otpauth_uri, "qrCode": enrolment.qr_code}
    )
