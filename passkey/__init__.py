"""PATCH /api/passkeys/{id} {"name"}: rename a passkey (200).
DELETE /api/passkeys/{id} {"password"} or {"code"}: remove it (204)."""

import azure.functions as func

from shared import http
from shared.http.gate import authenticated_account
from shared.passkeys import management
from shared.passkeys.service import passkeys


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    context, account = passkeys(), authenticated_account(req)
    body, passkey_id = http.read_json_object(req), req.route_params.get("id", "")
    if req.method.upper() == "DELETE":
        password, code = (
            http.optional_string_field(body, "password"),
            http.optional_string_field(body, "code"),
        )
        management.remove_passkey(context, account, passkey_id, password=password, code=code)
        return http.no_content()
    renamed = management.rename_passkey(context, account, passkey_id, http.string_field(body, "name"))
    return http.json_response(management.passkey_json(renamed))
