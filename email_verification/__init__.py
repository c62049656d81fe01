"""POST /api/email/verification {"email"}: queue a new verification code; always 202 with the same body."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.recovery import verification

ACCEPTED = "If an unverified account uses this email, a verification code is on its way."


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    email = http.string_field(http.read_json_object(req), "email")
    verification.request_verification(account_service(), email, forwarded_for=http.forwarded_for(req))
    return http.accepted(ACCEPTED)
