"""POST /api/logout: end the caller's device session; other devices stay signed in (204)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import request_token


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    account_service().log_out(request_token(req))
    return http.no_content()
