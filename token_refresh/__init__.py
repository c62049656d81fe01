"""POST /api/token/refresh {"refreshToken"}: a new token and the next refresh token (200); no token needed."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.accounts.token_refresh import redeem


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    refresh_token = http.string_field(http.read_json_object(req), "refreshToken")
    return http.session_response(redeem(account_service(), refresh_token))
