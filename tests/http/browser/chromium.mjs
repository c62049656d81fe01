// What every browser test's script shares: how headless Chromium (Debian's package, driven by
// playwright-core) is started on this machine, and what of a page's life goes into the logs.
import { chromium } from "playwright-core";

// Without the background-networking flags, Chromium's own connections are refused by a closed network.
export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

export function launch(executablePath) {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

// Console lines, page errors and failed requests of `page`, appended to `logs`.
export function recordInto(logs, page) {
  page.on("console", (message) => logs.push(`console.${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => logs.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => logs.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
}
