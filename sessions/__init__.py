"""GET /api/sessions: the caller's live sessions. DELETE /api/sessions/{id}: end one (204).
DELETE /api/sessions: end every session of the account, this one included (204)."""

import azure.functions as func

from shared import http
from shared.accounts.service import account_service
from shared.http.gate import request_token


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    service = account_service()
    account, verified = service.authenticate_session(request_token(req))
    session_id = req.route_params.get("id")
    if req.method.upper() == "GET":
        if session_id:
            raise http.not_found()
        return http.sessions_response(account, current=verified.session_id)
    if session_id:
        service.end_session(account, session_id, reason="revoked")
    else:
        service.end_all_sessions(account)
    return http.no_content()
