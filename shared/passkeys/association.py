"""The association files: what lets an iOS or Android app use passkeys of the relying party id.

An app may create and use passkeys of a domain only if the domain names the
app, in a file served at its root over https, without a redirect:

- ``/.well-known/apple-app-site-association``: ``{"webcredentials": {"apps": [...]}}``, each
  ``TEAMID.bundle.id`` of ``AUTH_PASSKEY_IOS_APP_IDS`` (Apple's "Supporting associated domains");
- ``/.well-known/assetlinks.json``: a statement per package of ``AUTH_PASSKEY_ANDROID_APPS``
  granting ``get_login_creds`` (and ``handle_all_urls``) to its signing keys (Digital Asset Links).

Both are built from the same settings as the origin check, so they cannot disagree.
"""

from __future__ import annotations

from typing import Any

from shared.settings.passkeys import PasskeySettings

__all__ = ["RELATIONS", "apple_app_site_association", "asset_links"]

#: What an Android app is granted on the relying party's domain.
RELATIONS = ("delegate_permission/common.handle_all_urls", "delegate_permission/common.get_login_creds")


def apple_app_site_association(settings: PasskeySettings) -> dict[str, Any]:
    """The body of ``/.well-known/apple-app-site-association``."""
    return {"webcredentials": {"apps": list(settings.ios_app_ids)}}


def asset_links(settings: PasskeySettings) -> list[dict[str, Any]]:
    """The body of ``/.well-known/assetlinks.json``: one statement per package, every fingerprint of it."""
    packages: dict[str, list[str]] = {}
    for app in settings.android_apps:
        packages.setdefault(app.package, []).append(app.fingerprint_text)
    return [
        {
            "relation": list(RELATIONS),
            "target": {
                "namespace": "android_app",
                "package_name": package,
                "sha256_cert_fingerprints": prints,
            },
        }
        for package, prints in packages.items()
    ]
