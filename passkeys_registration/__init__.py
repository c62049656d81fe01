"""POST /api/passkeys/registration {"credential", "name"?}: add the new passkey (201)."""

import azure.functions as func

from shared import http
from shared.http.gate import authenticated_account
from shared.passkeys import management, registration
from shared.passkeys.service import passkeys


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    context, account = passkeys(), authenticated_account(req)
    body = http.read_json_object(req)
    name = http.optional_string_field(body, "name")
    passkey = registration.add_passkey(context, account, body.get("credential"), name)
    return http.json_response(management.passkey_json(passkey), status_code=201)
