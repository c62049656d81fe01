"""GET /api/password/reset: the reset page. POST {"email","code","newPassword"}: reset (204)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http import pages
from shared.recovery import reset as recovery


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    if req.method.upper() == "GET":
        return pages.page_response("password_reset")
    body = http.read_json_object(req)
    email, code = http.string_field(body, "email"), http.string_field(body, "code")
    new_password = http.string_field(body, "newPassword")
    recovery.reset_password(
        account_service(), email, code, new_password, forwarded_for=http.forwarded_for(req)
    )
    return http.no_content()
