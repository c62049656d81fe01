"""GET /.well-known/jwks.json: the public keys that verify this service's tokens (200, cacheable)."""

import azure.functions as func

from shared import http
from shared.http.well_known import jwks_response


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    return jwks_response(req)
