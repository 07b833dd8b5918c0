/**
 * The dashboard in Debian's Chromium (through playwright-core), against a real Shunt process
 * built by `npm run build` (dist/cli/main.js, dist/web). One person's session from sign-in
 * to sign-out; screenshots of each page, light and dark, desktop and phone width, go to
 * .test-results/e2e-screenshots/ (UPDATE_README_SCREENSHOT=1 also refreshes docs/dashboard.png). Without Chromium a local run skips; under CI=true it fails.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { IN_CI } from '../helpers/backends.js';
import { freePort } from '../helpers/process.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ADMIN_KEY = 'shunt_e2eAdminKey0123456789abcdefghijkl';
const SHOTS = join('.test-results', 'e2e-screenshots');
// The README's picture is refreshed only on request, so a test run leaves the tree clean.
const README_SHOT = process.env.UPDATE_README_SCREENSHOT === '1' ? join('docs', 'dashboard.png') : join(SHOTS, 'readme.png');
const HOSTILE_TITLE = '<img src=x onerror=window.__xss=1>';
const HOSTILE_TAG = '<script>window.__xss=2</script>';
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const skip = existsSync(CHROMIUM) || IN_CI ? undefined : `Chromium not found at ${CHROMIUM} (apt-get install chromium)`;

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

describe('dashboard in Chromium', { skip, timeout: 300_000 }, () => {
  let shunt: ChildProcess;
  let base = '';
  let dataDir = '';
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const axeResults: string[] = [];

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, { ...init, headers: { Authorization: `Bearer ${ADMIN_KEY}`, 'Content-Type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });
  const visitFromOutside = (code: string) => fetch(`${base}/${code}`, { redirect: 'manual', headers: { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36' } });

  /** Polls an expression through the DevTools protocol (waitForFunction would eval inside the page, which its CSP forbids). */
  async function until(expression: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await page.evaluate<boolean>(expression))) {
      assert.ok(Date.now() < deadline, `still false after ${timeoutMs} ms: ${expression}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function go(hash: string, ready: string): Promise<void> {
    await page.goto(`${base}/${hash}`);
    await page.locator(ready).first().waitFor({ state: 'visible' });
  }

  /** axe-core, evaluated through the DevTools protocol (the page's CSP rightly forbids injected scripts). */
  async function checkAccessibility(name: string): Promise<void> {
    await page.evaluate(`${axeSource}\n;0`);
    const violations = await page.evaluate<AxeViolation[]>("axe.run(document, { resultTypes: ['violations'] }).then((result) => result.violations)");
    const serious = violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
    axeResults.push(`${name}: ${violations.length} violations, ${serious.length} serious/critical`);
    assert.deepEqual(serious.map((violation) => `${violation.id}: ${violation.help} (${violation.nodes.map((node) => node.target.join(' ')).join(', ')})`), [], `axe on ${name}`);
  }

  async function screenshots(name: string, hash: string, ready: string): Promise<void> {
    for (const [width, height, size] of [[1280, 800, 'desktop'], [360, 740, 'phone']] as const) {
      for (const scheme of ['light', 'dark'] as const) {
        await page.setViewportSize({ width, height });
        await page.emulateMedia({ colorScheme: scheme });
        await go(hash, ready);
        if (size === 'phone') {
          const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
          const wide = await page.evaluate<string>("[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(-3).map((e) => e.tagName + '.' + e.className).join(' ')");
          assert.ok(overflow <= 1, `${name} scrolls sideways at 360 px (${overflow} px): ${wide}`);
        }
        await page.screenshot({ path: join(SHOTS, `${name}-${size}-${scheme}.png`), fullPage: true });
      }
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: 'light' });
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    assert.ok(existsSync('dist/cli/main.js') && existsSync('dist/web/index.html'), 'run `npm run build` first');
    dataDir = mkdtempSync(join(tmpdir(), 'shunt-e2e-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    shunt = spawn(process.execPath, ['dist/cli/main.js', 'start'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: '127.0.0.1', PORT: String(port), BASE_URL: base, DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN_KEY, CLICK_FLUSH_INTERVAL_MS: '100', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    shunt.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (shunt.exitCode !== null) throw new Error(`shunt exited: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`shunt did not become ready: ${stderr}`);
      if (await fetch(`${base}/readyz`).then((response) => response.ok, () => false)) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) pageErrors.push(message.text());
    });
  });

  after(async () => {
    await browser?.close();
    shunt?.kill('SIGTERM');
    if (shunt !== undefined && shunt.exitCode === null) await new Promise((resolve) => shunt.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
    console.log(`# axe: ${axeResults.join('; ')}`);
  });

  test('the links page loads at most 200 KB of compressed JavaScript and CSS', () => {
    // Everything the entry pulls in: its own file, its CSS and its static imports (pages are in it).
    const manifest = JSON.parse(readFileSync('dist/web/.vite/manifest.json', 'utf8')) as Record<string, { file: string; css?: string[]; imports?: string[]; isEntry?: boolean }>;
    const files = new Set<string>();
    const visit = (key: string): void => {
      const chunk = manifest[key];
      if (chunk === undefined || files.has(chunk.file)) return;
      files.add(chunk.file);
      for (const css of chunk.css ?? []) files.add(css);
      for (const imported of chunk.imports ?? []) visit(imported);
    };
    for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry === true) visit(key);
    const sizes = [...files].map((file) => [file, gzipSync(readFileSync(join('dist/web', file)), { level: 9 }).length] as const);
    const total = sizes.reduce((sum, [, size]) => sum + size, 0);
    console.log(`# bundle (gzip): ${sizes.map(([file, size]) => `${file} ${size} B`).join(', ')}; total ${total} B`);
    assert.ok(sizes.some(([file]) => file.endsWith('.js')) && sizes.some(([file]) => file.endsWith('.css')));
    assert.ok(total <= 200 * 1024, `${total} bytes`);
  });

  test('the page is served with a strict CSP, frame protection and cache headers', async () => {
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-security-policy') ?? '', /script-src 'self'(;|$)/);
    assert.match(index.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(index.headers.get('x-frame-options'), 'DENY');
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'an inline script in the HTML entry');
    assert.doesNotMatch(html, /<style|style=/, 'an inline style in the HTML entry');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script !== undefined);
    const asset = await fetch(`${base}${script}`);
    assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  });

  test('sign in with the admin key: the key is kept nowhere a script can read', async () => {
    await go('', '#api-key');
    await screenshots('sign-in', '', '#api-key');
    await checkAccessibility('sign-in');
    await page.fill('#api-key', 'shunt_not-a-valid-key-at-all-0000000');
    await page.click('button[type=submit]');
    await page.locator('#sign-in-error', { hasText: 'not valid' }).waitFor();
    await page.fill('#api-key', ADMIN_KEY);
    await page.click('button[type=submit]');
    await page.locator('h1', { hasText: 'Links' }).waitFor();
    assert.equal(await page.evaluate('document.cookie'), '', 'the session cookie is readable by scripts');
    const stored = await page.evaluate<string>('JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage })');
    assert.ok(!stored.includes(ADMIN_KEY), 'the key is in web storage');
    assert.ok(!page.url().includes(ADMIN_KEY));
    const cookie = (await context.cookies()).find((candidate) => candidate.name === 'shunt_session');
    assert.ok(cookie !== undefined && cookie.httpOnly && cookie.sameSite === 'Strict');
  });

  test('create a link through the form, with field errors first; hostile text stays text', async () => {
    await go('#/links', 'h1');
    await page.click('text=New link');
    await page.locator('#f-url').waitFor();
    await page.fill('#f-url', 'ftp://nope');
    await page.fill('#f-alias', 'api');
    await page.click('button[type=submit]');
    await page.locator('.field-error:not(:empty)').first().waitFor();
    assert.notEqual(await page.textContent('#e-url'), '');
    await page.fill('#f-url', 'https://example.com/first');
    await page.fill('#f-alias', 'e2e-one');
    await page.fill('#f-title', HOSTILE_TITLE);
    await page.fill('#f-tags', `${HOSTILE_TAG}, demo`);
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/links\/e2e-one$/);
    await go('#/links', 'tr[data-code="e2e-one"]');
    const row = page.locator('tr[data-code="e2e-one"]');
    assert.ok((await row.textContent())?.includes(HOSTILE_TITLE));
    assert.ok((await row.textContent())?.includes(HOSTILE_TAG));
    assert.equal(await page.locator('tr[data-code="e2e-one"] img').count(), 0);
    assert.equal(await page.evaluate('window.__xss'), undefined);
  });

  test('clicks from outside reach the totals, the chart and (within 2 s) the live list', async () => {
    for (let i = 0; i < 3; i += 1) {
      const response = await visitFromOutside('e2e-one');
      assert.equal(response.status, 302);
      assert.equal(response.headers.get('location'), 'https://example.com/first');
    }
    await go('#/links/e2e-one', '#total-clicks');
    const deadline = Date.now() + 15_000;
    while ((await page.textContent('#total-clicks')) !== '3') {
      assert.ok(Date.now() < deadline, `totals stayed at ${await page.textContent('#total-clicks')}`);
      await page.waitForTimeout(500);
      await page.click('button:text("Show")');
    }
    assert.ok((await page.locator('#chart rect.bar').count()) > 0);
    const tallest = await page.evaluate<number>("Math.max(...[...document.querySelectorAll('#chart rect.bar')].map((bar) => Number(bar.getAttribute('height'))))");
    assert.ok(tallest > 0, 'the chart shows no clicks');
    await page.locator('h2', { hasText: '(connected)' }).waitFor({ timeout: 10_000 });
    const before = await page.locator('#live-clicks li').count();
    const sent = Date.now();
    await visitFromOutside('e2e-one');
    await until(`document.querySelectorAll('#live-clicks li').length > ${before}`, 2000);
    assert.ok(Date.now() - sent <= 2000);
    assert.equal(await page.textContent('#total-clicks'), '4');
    await checkAccessibility('stats');
    await screenshots('stats', '#/links/e2e-one', '#chart svg');
  });

  test('edit the destination and the redirect changes; a concurrent edit is a conflict', async () => {
    await go('#/links/e2e-one/edit', '#f-url');
    await checkAccessibility('edit');
    await page.fill('#f-url', 'https://example.org/second');
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/links\/e2e-one$/);
    assert.equal((await visitFromOutside('e2e-one')).headers.get('location'), 'https://example.org/second');

    await go('#/links/e2e-one/edit', '#f-url');
    assert.equal((await api('/api/v1/links/e2e-one', { method: 'PATCH', body: JSON.stringify({ title: 'changed elsewhere' }) })).status, 200);
    await page.fill('#f-url', 'https://example.org/third');
    await page.click('button[type=submit]');
    await page.locator('[role=alert]', { hasText: 'changed elsewhere' }).waitFor();
    assert.equal((await visitFromOutside('e2e-one')).headers.get('location'), 'https://example.org/second');
  });

  test('bulk create gives one result per line', async () => {
    await go('#/links/bulk', '#bulk-text');
    await page.fill('#bulk-text', 'url,alias\nhttps://example.com/b1,e2e-bulk-1\nnot a url\nhttps://example.com/b3,e2e-bulk-3,"Third, with comma",x;y');
    await page.click('button:text("Create links")');
    await page.locator('#bulk-results', { hasText: '2 of 3 created' }).waitFor();
    assert.equal(await page.locator('#bulk-results tr.failed').count(), 1);
    const third = (await (await api('/api/v1/links/e2e-bulk-3')).json()) as { title: string; tags: string[] };
    assert.deepEqual([third.title, third.tags], ['Third, with comma', ['x', 'y']]);
    await screenshots('bulk', '#/links/bulk', '#bulk-text');
  });

  test('the QR dialog shows the code and downloads a PNG', async () => {
    await go('#/links', 'tr[data-code="e2e-one"]');
    await page.click('tr[data-code="e2e-one"] button:text("QR")');
    const image = page.locator('dialog img.qr');
    await image.waitFor();
    await until("document.querySelector('dialog img.qr')?.naturalWidth > 0", 10_000);
    await checkAccessibility('qr dialog');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('dialog a:text("Download PNG")')]);
    const path = await download.path();
    assert.deepEqual([...readFileSync(path).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    await page.click('dialog button:text("Close")');
  });

  test('list, overview and keys pages pass axe and render at both widths and themes', async () => {
    await go('#/links', 'tr[data-code="e2e-one"]');
    await page.locator('tr[data-code="e2e-one"] .clicks', { hasText: /^\d+$/ }).waitFor();
    // 3 + the live one + one after each of the two edits.
    assert.equal(await page.textContent('tr[data-code="e2e-one"] .clicks'), '6');
    await checkAccessibility('links');
    await page.emulateMedia({ colorScheme: 'dark' });
    await checkAccessibility('links (dark)');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: README_SHOT });
    await screenshots('links', '#/links', 'tr[data-code="e2e-one"]');
    await screenshots('new-link', '#/links/new', '#f-url');
    await go('#/overview', '.chart-box svg');
    await checkAccessibility('overview');
    await screenshots('overview', '#/overview', '.chart-box svg');
    await go('#/keys', 'table');
    await checkAccessibility('keys');
    await screenshots('keys', '#/keys', 'table');
  });

  test('delete asks for confirmation and the short link stops', async () => {
    await go('#/links', 'tr[data-code="e2e-bulk-1"]');
    await page.click('tr[data-code="e2e-bulk-1"] button:text("Delete")');
    await page.click('dialog button:text("Cancel")');
    assert.equal(await page.locator('tr[data-code="e2e-bulk-1"]').count(), 1);
    await page.click('tr[data-code="e2e-bulk-1"] button:text("Delete")');
    await page.click('dialog button.danger');
    await page.locator('tr[data-code="e2e-bulk-1"]').waitFor({ state: 'detached' });
    assert.equal((await visitFromOutside('e2e-bulk-1')).status, 404);
  });

  test('sign out: the old session cookie no longer works', async () => {
    const cookie = (await context.cookies()).find((candidate) => candidate.name === 'shunt_session');
    assert.ok(cookie !== undefined);
    await page.click('#sign-out');
    await page.locator('#api-key').waitFor();
    const replay = await fetch(`${base}/api/v1/links`, { headers: { Cookie: `shunt_session=${cookie.value}` } });
    assert.equal(replay.status, 401);
    assert.equal(await page.evaluate('window.__xss'), undefined);
    assert.deepEqual(pageErrors, []);
  });
});
