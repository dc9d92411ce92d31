// Opens a local HTML file in headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM), checks that the CSS
// selectors given as arguments each match at least one element, and saves a full-page screenshot.
// Usage: node render.mjs page.html screenshot.png "selector=min" ...   Prints one JSON object; exits 1 on a failed check.
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const [page, screenshot, ...checks] = process.argv.slice(2);
if (!page || !screenshot) {
  console.error('usage: node render.mjs page.html screenshot.png "selector=min" ...');
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests = [];
  tab.on('request', r => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
  const errors = [];
  tab.on('pageerror', e => errors.push(String(e)));
  await tab.goto(pathToFileURL(resolve(page)).href, { waitUntil: 'load' });
  const counts = {};
  let failed = false;
  for (const check of checks) {
    const at = check.lastIndexOf('=');
    const selector = check.slice(0, at), min = Number(check.slice(at + 1));
    counts[selector] = await tab.locator(selector).count();
    if (counts[selector] < min) failed = true;
  }
  const title = await tab.title();
  await tab.screenshot({ path: screenshot, fullPage: false });
  console.log(JSON.stringify({ title, counts, network: requests, errors }));
  if (failed || requests.length > 0 || errors.length > 0) process.exit(1);
} finally {
  await browser.close();
}
