"""GET /api/passkeys: the caller's passkeys, oldest first."""

import azure.functions as func

from shared import http
from shared.http.gate import authenticated_account
from shared.passkeys import management
from shared.passkeys.service import passkeys


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    context, account = passkeys(), authenticated_account(req)
    listed = management.list_passkeys(context, account)
    return http.json_response({"passkeys": [management.passkey_json(passkey) for passkey in listed]})
