"""GET /.well-known/openid-configuration: the issuer, its key set's URL and algorithms (200, cacheable)."""

import azure.functions as func

from shared import http
from shared.http.well_known import discovery_response


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    return discovery_response(req)
