"""POST /api/me/email/confirm {"code"}: move the account to the new email; 200 with the profile."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import authenticated_account
from shared.recovery import email_change


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    code = http.string_field(http.read_json_object(req), "code")
    return http.profile_response(email_change.confirm_change(account_service(), account, code))
