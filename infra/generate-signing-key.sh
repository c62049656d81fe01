#!/usr/bin/env sh
# azd preprovision hook: give this azd environment a signing key, an encryption key and an ES256
# private key once, and keep them afterwards (a new signing key would log every user out; a new
# encryption key would make every second factor unreadable; a new private key would be an unplanned
# rotation: docs/tokens.md).
set -eu
if [ -z "$(azd env get-value AUTH_SIGNING_KEY 2>/dev/null || true)" ]; then
  azd env set AUTH_SIGNING_KEY "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  echo "Generated AUTH_SIGNING_KEY for this environment (stored in Key Vault on provision)."
fi
if [ -z "$(azd env get-value AUTH_ENCRYPTION_KEY 2>/dev/null || true)" ]; then
  azd env set AUTH_ENCRYPTION_KEY "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  echo "Generated AUTH_ENCRYPTION_KEY for this environment (stored in Key Vault on provision)."
fi
if [ -z "$(azd env get-value AUTH_SIGNING_PRIVATE_KEY 2>/dev/null || true)" ]; then
  # A P-256 key as PKCS#8 PEM, on one line with \n for each newline (app settings are one line).
  azd env set AUTH_SIGNING_PRIVATE_KEY "$(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    | awk '{ printf "%s\\n", $0 }')"
  echo "Generated AUTH_SIGNING_PRIVATE_KEY for this environment (stored in Key Vault on provision; signs under ES256)."
fi
