"""POST /api/login: check an email and password and return a token (200)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.login.password import log_in


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    service = account_service()
    body = http.read_json_object(req)
    email = http.string_field(body, "email", "emailOrUsername")
    password = http.string_field(body, "password")
    session = log_in(service, email, password, forwarded_for=http.forwarded_for(req))
    return http.session_response(session)
