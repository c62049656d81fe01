"""POST /api/password/forgot {"email"}: queue a reset mail; always 202 with the same body."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.recovery import reset as recovery

ACCEPTED = "If an account uses this email, a reset code is on its way."


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    email = http.string_field(http.read_json_object(req), "email")
    recovery.request_reset(account_service(), email, forwarded_for=http.forwarded_for(req))
    return http.accepted(ACCEPTED)
