#!/usr/bin/env sh
# azd preprovision hook: give this azd environment a signing key once, and keep it afterwards
# (a new key on every `azd up` would log every user out).
set -eu
if [ -z "$(azd env get-value AUTH_SIGNING_KEY 2>/dev/null || true)" ]; then
  azd env set AUTH_SIGNING_KEY "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  echo "Generated AUTH_SIGNING_KEY for this environment (stored in Key Vault on provision)."
fi
