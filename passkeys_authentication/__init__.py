"""POST /api/passkeys/authentication {"credential"}: sign in with a passkey (200, the session body)."""

import azure.functions as func

from shared import http
from shared.passkeys import authentication
from shared.passkeys.service import passkeys


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    context, body = passkeys(), http.read_json_object(req)
    session = authentication.sign_in(context, body.get("credential"), forwarded_for=http.forwarded_for(req))
    return http.session_response(session)
