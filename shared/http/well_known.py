"""The documents at the root of the host: `/.well-known/jwks.json` and `/.well-known/openid-configuration`.

Public and cacheable (``Cache-Control: public, max-age=AUTH_JWKS_MAX_AGE_SECONDS``,
never ``no-cache``): verifiers are expected to keep them, and a next key is
published long before it signs (docs/tokens.md, the rotation steps).
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.settings import Settings, get_settings
from shared.tokens.jwks import discovery_document, key_set

__all__ = ["discovery_response", "jwks_response"]


def jwks_response(req: func.HttpRequest) -> func.HttpResponse:
    """``GET /.well-known/jwks.json``: the public keys (``application/jwk-set+json``)."""
    settings = get_settings()
    return _public(settings, key_set(settings.signing.keys), "application/jwk-set+json")


def discovery_response(req: func.HttpRequest) -> func.HttpResponse:
    """``GET /.well-known/openid-configuration``: the issuer and where its keys are."""
    settings = get_settings()
    document = discovery_document(settings.tokens.issuer, settings.signing.keys, req.url)
    return _public(settings, document, "application/json")


def _public(settings: Settings, body: dict[str, Any], media_type: str) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=200,
        headers={"Cache-Control": f"public, max-age={settings.signing.jwks_max_age}"},
        mimetype=media_type,
        charset="utf-8",
    )
