// Verifies tokens the way a Node API would: discovery document -> createRemoteJWKSet -> jwtVerify.
// stdin: {"discovery": "<url of /.well-known/openid-configuration>", "audience": "...", "tokens": ["..."]}
// stdout: {"discovery": {...the document...}, "results": [{"ok": true, "payload": {...}, "header": {...}}
//          or {"ok": false, "code": "<jose error code>"}]}
import { createRemoteJWKSet, jwtVerify } from 'jose';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const response = await fetch(input.discovery);
if (!response.ok) throw new Error(`discovery answered ${response.status}`);
const discovery = await response.json();
const keys = createRemoteJWKSet(new URL(discovery.jwks_uri));
const results = [];
for (const token of input.tokens) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, keys, {
      issuer: discovery.issuer,
      audience: input.audience,
      algorithms: discovery.id_token_signing_alg_values_supported,
    });
    results.push({ ok: true, payload, header: protectedHeader });
  } catch (error) {
    results.push({ ok: false, code: error.code ?? error.name });
  }
}
process.stdout.write(JSON.stringify({ discovery, results }));
