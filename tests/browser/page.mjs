// Drives BioForge's served web page in headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM): analyzes the
// example protein, designs candidates for the example target, screens a small library, streams samples from a served
// decoder, and saves a full-page screenshot. Usage: node page.mjs http://127.0.0.1:PORT/ screenshot.png [api-key]
// Prints one JSON object; exits 1 when a step does not show its result or the page asks for anything off the server.
import { chromium } from 'playwright-core';

const [url, screenshot, key] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node page.mjs URL screenshot.png [api-key]');
  process.exit(2);
}
const origin = new URL(url).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const result = { steps: {}, offsite: [], errors: [] };
let failed = false;
try {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  tab.on('request', r => { if (!r.url().startsWith(origin) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) result.offsite.push(r.url()); });
  tab.on('pageerror', e => result.errors.push(String(e)));
  const step = async (name, body) => {
    try {
      result.steps[name] = await body();
    } catch (e) {
      result.steps[name] = `failed: ${e.message.split('\n')[0]}`;
      failed = true;
    }
  };
  await tab.goto(url, { waitUntil: 'load' });
  if (key) {
    await tab.fill('#api-key', key);
    await tab.dispatchEvent('#api-key', 'change');
  }
  await step('models', async () => {
    await tab.waitForFunction(() => /models:/.test(document.getElementById('service-status').textContent), null, { timeout: 20000 });
    return await tab.textContent('#service-status');
  });
  await step('protein', async () => {
    await tab.click('#protein-example');
    await tab.click('#protein-run');
    await tab.waitForSelector('#contact-map[data-residues]', { timeout: 60000 });
    await tab.waitForSelector('#residue-probabilities[data-residues]', { timeout: 60000 });
    return { residues: Number(await tab.getAttribute('#contact-map', 'data-residues')), message: await tab.textContent('#protein-message'),
      contacts: await tab.textContent('#contact-top') };
  });
  await step('design', async () => {
    await tab.click('#target-example');
    await tab.fill('#iterations', '2');
    await tab.fill('#num-molecules', '6');
    await tab.click('#design-run');
    await tab.waitForSelector('.gallery .card img', { timeout: 180000 });
    await tab.waitForFunction(() => !document.getElementById('design-run').disabled, null, { timeout: 180000 });
    return { cards: await tab.locator('.gallery .card').count(), message: await tab.textContent('#design-message') };
  });
  await step('screen', async () => {
    await tab.fill('#library', 'CC(=O)Oc1ccccc1C(=O)O aspirin\nCn1cnc2c1c(=O)n(C)c(=O)n2C caffeine\nC1CC broken\nCc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1 imatinib');
    await tab.click('#screen-run');
    await tab.waitForSelector('#hits:not([hidden]) tbody tr', { timeout: 60000 });
    return { rows: await tab.locator('#hits tbody tr').count(), message: await tab.textContent('#screen-message') };
  });
  await step('sample', async () => {
    await tab.waitForFunction(() => document.getElementById('sample-model').options.length > 0, null, { timeout: 20000 });
    await tab.fill('#sample-n', '3');
    await tab.fill('#sample-max', '60');
    await tab.click('#sample-run');
    await tab.waitForFunction(() => /of 3 samples|ended early|error|HTTP/.test(document.getElementById('sample-message').textContent), null, { timeout: 120000 });
    const message = await tab.textContent('#sample-message');
    if (!/^\d+ of 3 samples$/.test(message)) throw new Error(`the streamed samples did not complete: ${message}`);
    const texts = await tab.locator('#samples li').allTextContents();
    if (texts.length !== 3 || texts.some(t => t.length === 0)) throw new Error(`expected 3 non-empty samples, got ${JSON.stringify(texts)}`);
    return { model: await tab.inputValue('#sample-model'), samples: texts, message };
  });
  await tab.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
if (failed || result.offsite.length > 0 || result.errors.length > 0) process.exit(1);
