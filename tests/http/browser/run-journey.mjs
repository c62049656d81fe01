// Opens the journey page in headless Chromium (Debian's package, driven by playwright-core) and
// prints what the page saw, with its console and errors, as JSON.
// Usage: node run-journey.mjs PAGE_URL CHROMIUM_PATH
import { launch, recordInto } from "./chromium.mjs";

const [pageUrl, executablePath] = process.argv.slice(2);
const browser = await launch(executablePath);
const logs = [];
let result = null;
try {
  const page = await browser.newPage();
  recordInto(logs, page);
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
