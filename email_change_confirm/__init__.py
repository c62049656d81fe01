"""POST /api/me/email/confirm {"code"}: move the account to the new email; 200 with the profile."""

import azure.functions as func

from shared import email_change, http
from shared.accounts import account_service
from shared.authentication import authenticated_account


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    code = http.string_field(http.read_json_object(req), "code")
    return http.profile_response(email_change.confirm_change(account_service(), account, code))
