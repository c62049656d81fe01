// Opens the passkey page in headless Chromium (Debian's package, driven by playwright-core) with a
// CDP virtual authenticator (a platform authenticator with resident keys and user verification),
// and prints what the page saw, with its console and errors, as JSON.
// The page is served at the local host's origin: this script answers that one URL itself, and
// every other request (the API) goes to the local host.
// Usage: node run-passkey.mjs PAGE_URL PAGE_FILE CHROMIUM_PATH
import { readFile } from "node:fs/promises";
import { launch, recordInto } from "../../http/browser/chromium.mjs";

const [pageUrl, pageFile, executablePath] = process.argv.slice(2);
const browser = await launch(executablePath);
const logs = [];
let result = null;
try {
  const page = await browser.newPage();
  recordInto(logs, page);
  const html = await readFile(pageFile, "utf-8");
  const path = new URL(pageUrl).pathname;
  await page.route((url) => url.pathname === path, (route) =>
    route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }));
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(pageUrl);
  try {
    await page.waitForFunction(() => window.passkeyResult !== undefined, null, { timeout: 60000 });
    result = await page.evaluate(() => window.passkeyResult);
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    result.authenticatorCredentials = credentials.map((c) => ({ isResidentCredential: c.isResidentCredential, signCount: c.signCount }));
  } catch (error) {
    logs.push(`gave up waiting: ${error.message.split("\n")[0]}`);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ result, logs }));
