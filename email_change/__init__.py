"""POST /api/me/email {"password","newEmail"}: check the password, mail the new address; 202."""

import azure.functions as func

from shared import email_change, http
from shared.accounts import account_service
from shared.authentication import authenticated_account

ACCEPTED = "A message is on its way to the new address."


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    body = http.read_json_object(req)
    password, new_email = http.string_field(body, "password"), http.string_field(body, "newEmail")
    service = account_service()
    email_change.request_change(service, account, password, new_email, forwarded_for=http.forwarded_for(req))
    return http.accepted(ACCEPTED)
