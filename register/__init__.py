"""POST /api/register: create an account and return its first token (201)."""

import azure.functions as func

from shared import http
from shared.accounts import account_service


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    service = account_service()
    body = http.read_json_object(req)
    email, password = http.string_field(body, "email"), http.string_field(body, "password")
    session = service.register(email, password, forwarded_for=http.forwarded_for(req))
    return http.session_response(session, status_code=201)
