"""POST /api/passkeys/authentication/options: request options to sign in with a passkey."""

import azure.functions as func

from shared import http
from shared.passkeys import authentication
from shared.passkeys.service import passkeys


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    return http.json_response(authentication.request_options(passkeys()))
