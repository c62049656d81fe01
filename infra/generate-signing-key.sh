#!/usr/bin/env sh
# azd preprovision hook: give this azd environment a signing key and an encryption key once, and keep
# them afterwards (a new signing key would log every user out; a new encryption key would make every
# second factor unreadable).
set -eu
if [ -z "$(azd env get-value AUTH_SIGNING_KEY 2>/dev/null || true)" ]; then
  azd env set AUTH_SIGNING_KEY "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  echo "Generated AUTH_SIGNING_KEY for this environment (stored in Key Vault on provision)."
fi
if [ -z "$(azd env get-value AUTH_ENCRYPTION_KEY 2>/dev/null || true)" ]; then
  azd env set AUTH_ENCRYPTION_KEY "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  echo "Generated AUTH_ENCRYPTION_KEY for this environment (stored in Key Vault on provision)."
fi
