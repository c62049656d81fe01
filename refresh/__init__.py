"""POST /api/refresh: a valid, unrevoked token in, a fresh token of the same session out (200)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import request_token


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    return http.session_response(account_service().refresh(request_token(req)))
