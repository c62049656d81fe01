"""GET /api/email/verify: the verification page. POST {"email","code"}: verify the email (204)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http import pages
from shared.recovery import verification


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    if req.method.upper() == "GET":
        return pages.page_response("email_verify")
    body = http.read_json_object(req)
    email, code = http.string_field(body, "email"), http.string_field(body, "code")
    verification.verify_email(account_service(), email, code, forwarded_for=http.forwarded_for(req))
    return http.no_content()
