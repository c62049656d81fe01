"""GET /.well-known/assetlinks.json: the Android apps (and signing keys) that may use the RP id's passkeys."""

import azure.functions as func

from shared import http
from shared.passkeys.association import asset_links
from shared.passkeys.service import passkey_settings


@http.handles_problems
def main(req: func.HttpRequest) -> func.HttpResponse:
    return http.document_response(asset_links(passkey_settings()))
