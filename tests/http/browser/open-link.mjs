// Opens a mail link in headless Chromium (Debian's package, driven by playwright-core), optionally
// fills the form and presses its button, and prints what the page showed, as JSON.
// Usage: node open-link.mjs URL CHROMIUM_PATH ACTIONS_JSON
//   ACTIONS_JSON: one step or a list of steps, done in order on the one page; each step is
//     {"fill": {"#password": "..."}, "submit": true, "failNetwork": true}
//   where failNetwork makes the page's POSTs fail as if the network were down (from that step on).
//   {} only opens the page and lingers a second, as a mail scanner or link previewer would.
// Prints {"result": {"opened", "status", "headers", "steps", "shown"}, "requests", "logs"};
// "result" is null if something failed (see "logs").
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "./chromium.mjs";

const [url, executablePath, actionsJson] = process.argv.slice(2);
const parsed = JSON.parse(actionsJson || "{}");
const steps = Array.isArray(parsed) ? parsed : [parsed];
const profile = mkdtempSync(join(tmpdir(), "open-link-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: CHROMIUM_ARGS,
});
const logs = [];
const requests = [];
let result = null;

async function shownMessages(page) {
  return {
    result: (await page.isVisible("#result")) ? await page.textContent("#result") : null,
    error: (await page.isVisible("#error")) ? await page.textContent("#error") : null,
    formVisible: await page.isVisible("#form"),
  };
}

try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => logs.push(`console.${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => logs.push(`page error: ${error.message}`));
  page.on("request", (request) => requests.push(`${request.method()} ${request.url()}`));
  const response = await page.goto(url, { waitUntil: "load" });
  await page.waitForTimeout(1000);
  const opened = {
    address: page.url(),
    email: await page.inputValue("#email"),
    code: await page.inputValue("#code"),
  };
  const done = [];
  for (const step of steps) {
    if (step.failNetwork) {
      await page.route("**/*", (route) =>
        route.request().method() === "POST" ? route.abort("internetdisconnected") : route.continue());
    }
    for (const [selector, value] of Object.entries(step.fill || {})) {
      await page.fill(selector, value);
    }
    if (step.submit) {
      // The harness clears the previous message, so that waiting sees this press's outcome only.
      await page.evaluate(() => {
        for (const id of ["result", "error"]) {
          const element = document.getElementById(id);
          element.hidden = true;
          element.textContent = "";
        }
      });
      await page.click("#submit");
      await page.waitForSelector("#result:not([hidden]), #error:not([hidden])", { timeout: 15000 });
      await page.waitForFunction(() => !document.getElementById("submit").disabled, null, { timeout: 15000 });
      done.push(await shownMessages(page));
    }
  }
  result = {
    opened,
    status: response.status(),
    headers: response.headers(),
    steps: done,
    shown: done.length ? done[done.length - 1] : null,
  };
} catch (error) {
  logs.push(`failed: ${error.message.split("\n")[0]}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify({ result, requests, logs }));
