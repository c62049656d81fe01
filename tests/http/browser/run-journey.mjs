// Opens the journey page in headless Chromium (Debian's package, driven by playwright-core) and
// prints what the page saw, with its console and errors, as JSON.
// Usage: node run-journey.mjs PAGE_URL CHROMIUM_PATH
import { chromium } from "playwright-core";

const [pageUrl, executablePath] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const logs = [];
let result = null;
try {
  const page = await browser.newPage();
  page.on("console", (message) => logs.push(`console.${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => logs.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => logs.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  await page.goto(pageUrl);
  try {
    await page.waitForFunction(() => window.journeyResult !== undefined, null, { timeout: 30000 });
    result = await page.evaluate(() => window.journeyResult);
  } catch (error) {
    logs.push(`gave up waiting: ${error.message.split("\n")[0]}`);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ result, logs }));
