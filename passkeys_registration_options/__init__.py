"""POST /api/passkeys/registration/options {"password"?, "code"?}: creation options for a new passkey."""

import azure.functions as func

from shared import http
from shared.http.gate import request_token
from shared.passkeys import registration
from shared.passkeys.service import passkeys


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    context = passkeys()
    account, token = context.accounts.authenticate_session(request_token(req))
    body = http.read_json_object(req) if req.get_body() else {}
    password, code = http.optional_string_field(body, "password"), http.optional_string_field(body, "code")
    options = registration.creation_options(context, account, token, password=password, code=code)
    return http.json_response(options)
