"""POST /api/register: create an account and return its first token (201).

Under AUTH_REQUIRE_VERIFIED_EMAIL=true: 202 with one fixed body and no token,
whether or not the email had an account; the mail says what comes next.
"""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service

ACCEPTED = "Check your email to finish signing up."


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    service = account_service()
    body = http.read_json_object(req)
    email, password = http.string_field(body, "email"), http.string_field(body, "password")
    if service.settings.mail.require_verified:
        service.register_unverified(email, password, forwarded_for=http.forwarded_for(req))
        return http.accepted(ACCEPTED)
    session = service.register(email, password, forwarded_for=http.forwarded_for(req))
    return http.session_response(session, status_code=201)
