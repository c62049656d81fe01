// Opens a mail link in headless Chromium (Debian's package, driven by playwright-core), optionally
// fills the form and presses its button, and prints what the page showed, as JSON.
// Usage: node open-link.mjs URL CHROMIUM_PATH ACTIONS_JSON
//   ACTIONS_JSON: {"fill": {"#password": "..."}, "submit": true}; {} only opens the page, as a scanner would.
import { chromium } from "playwright-core";

const [url, executablePath, actionsJson] = process.argv.slice(2);
const actions = JSON.parse(actionsJson || "{}");
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const logs = [];
const requests = [];
let result = null;
try {
  const page = await browser.newPage();
  page.on("console", (message) => logs.push(`console.${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => logs.push(`page error: ${error.message}`));
  page.on("request", (request) => requests.push(`${request.method()} ${request.url()}`));
  await page.goto(url, { waitUntil: "load" });
  await page.waitForTimeout(500);
  const opened = {
    address: page.url(),
    email: await page.inputValue("#email"),
    code: await page.inputValue("#code"),
  };
  for (const [selector, value] of Object.entries(actions.fill || {})) {
    await page.fill(selector, value);
  }
  let shown = null;
  if (actions.submit) {
    await page.click("#submit");
    await page.waitForSelector("#result:not([hidden]), #error:not([hidden])", { timeout: 15000 });
    shown = {
      result: (await page.isVisible("#result")) ? await page.textContent("#result") : null,
      error: (await page.isVisible("#error")) ? await page.textContent("#error") : null,
    };
  }
  result = { opened, shown };
} catch (error) {
  logs.push(`failed: ${error.message.split("\n")[0]}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ result, requests, logs }));
