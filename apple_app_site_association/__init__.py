"""GET /.well-known/apple-app-site-association: the iOS apps that may use the RP id's passkeys."""

import azure.functions as func

from shared import http
from shared.passkeys.association import apple_app_site_association
from shared.passkeys.service import passkey_settings


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    return http.document_response(apple_app_site_association(passkey_settings()))
