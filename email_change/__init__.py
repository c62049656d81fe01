"""POST /api/me/email {"password","newEmail"}: check the password, mail the new address; 202."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import authenticated_account
from shared.recovery import email_change

ACCEPTED = "A message is on its way to the new address."


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account = authenticated_account(req)
    body = http.read_json_object(req)
    password, new_email = http.string_field(body, "password"), http.string_field(body, "newEmail")
    service = account_service()
    email_change.request_change(service, account, password, new_email, forwarded_for=http.forwarded_for(req))
    return http.accepted(ACCEPTED)
