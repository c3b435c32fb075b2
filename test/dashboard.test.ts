import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, CLI, REPO, SPEC_RULES, startDaemon, tempDir, until, writeSetup, type RunningDaemon } from './helpers.js';

/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core (which never
 * downloads a browser), against the BUILT daemon on temporary folders.
 *
 * Without a chromium at CHROMIUM the tests are skipped, with a warning saying so.
 * `UPDATE_SCREENSHOT=1 npx vitest run test/dashboard.test.ts` also writes docs/dashboard.png.
 */

/** Debian's chromium; FERRY_CHROMIUM names another build of it. */
const CHROMIUM = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`dashboard tests skipped: ${CHROMIUM} does not exist (apt-get install chromium)`);

const run = promisify(execFile);
/** How long the page may take to show something. */
const WAIT = 20_000;

const CURRENT = '  classDef current fill:#ffd866,stroke:#b8860b,stroke-width:3px,color:#000\n';
/** The class lines src/observe/mermaid.ts adds for a state path: each state on it is `current`. */
function withCurrent(text: string, machine: string, path: string[]): string {
  const ids = path.map((_, i) => [machine, ...path.slice(0, i + 1)].join('_').replace(/[^A-Za-z0-9_]/g, '_'));
  return text + CURRENT + ids.map((id) => `  class ${id} current\n`).join('');
}

/** Every state path of a machine definition (toJSON): ['stopped'], ['active'], ['active', 'running'], … */
function statePaths(node: { states?: Record<string, unknown> }, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [key, child] of Object.entries(node.states ?? {})) {
    out.push([...prefix, key], ...statePaths(child as { states?: Record<string, unknown> }, [...prefix, key]));
  }
  return out;
}

interface Actor {
  id: string;
  path: string[];
}
async function actorPath(base: string, id: string): Promise<string> {
  const { body } = await api(base, 'GET', '/debug/machines');
  return (body.actors as Actor[]).find((a) => a.id === id)!.path.join('.');
}

describe.skipIf(!HAVE_CHROMIUM)('dashboard in chromium', () => {
  let dir: string;
  let daemon: RunningDaemon;
  let browser: Browser;
  let page: Page;
  const requests: string[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    dir = await tempDir('ferry-dashboard-');
    const setup = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: SPEC_RULES });
    await fsp.mkdir(path.join(dir, 'A/backedup'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'A/hello.txt'), 'hello\n');
    await fsp.writeFile(path.join(dir, 'A/backedup/report.pdf'), Buffer.alloc(150_000, 7));
    await fsp.writeFile(path.join(dir, 'B/notes.txt'), 'notes\n');
    daemon = await startDaemon(setup);

    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(WAIT);
    page.on('request', (r) => requests.push(r.url()));
    page.on('websocket', (ws) => requests.push(ws.url()));
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => {
      // The refusals this test provokes on purpose (409, 400) are logged by chromium as failed loads.
      if (m.type() === 'error' && !/status of (400|409) /.test(m.text())) problems.push(`console error: ${m.text()}`);
    });
    await page.goto(daemon.url + '/');
  });

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  const state = (name: string) => page.getByTestId(`entry-${name}-state`);
  /** Resolves once the entry's drawing shows `text` as its current state (and the state text says it). */
  async function shows(name: string, text: string) {
    await page.locator(`[data-testid="entry-${name}-state"]`, { hasText: new RegExp(`^${text.replace('.', '\\.')}$`) }).waitFor();
    const leaf = text.split('.').pop()!;
    await page
      .locator(`[data-testid="entry-${name}-diagram"][data-state="${text}"] g.node.current`, { hasText: new RegExp(`^\\s*${leaf}\\s*$`) })
      .waitFor();
  }

  it('draws both entries with their live state, and the rules actor', async () => {
    await shows('A', 'active.running');
    await shows('B', 'active.running');
    expect(await state('A').textContent()).toBe('active.running');
    // Exactly one state is the current one; the state around it is marked as its parent.
    expect(await page.locator('[data-testid="entry-A-diagram"] g.current').count()).toBe(1);
    expect(await page.locator('[data-testid="entry-A-diagram"] g.currentParent').textContent()).toContain('active');
    await page.locator('[data-testid="rules-diagram"][data-state="ready"] g.node.current', { hasText: 'ready' }).waitFor();
    expect(await page.getByTestId('rules-state').textContent()).toBe('ready');
    // Running entries show their worker's stats.
    await page.getByTestId('entry-A-stats').getByText('pid').waitFor();
    await page.getByTestId('connection').getByText('live').waitFor();
  });

  it('stops and starts an entry with its buttons; the drawing and /debug/machines follow', async () => {
    expect(await actorPath(daemon.api, 'entry:B')).toBe('active.running');

    await page.getByTestId('entry-B-stop').click();
    await shows('B', 'stopped');
    await until('entry:B stopped in /debug/machines', async () => (await actorPath(daemon.api, 'entry:B')) === 'stopped');
    await page.getByTestId('entry-B-stats').getByText('not running').waitFor();
    expect(await state('A').textContent()).toBe('active.running');

    // A refused control shows the API's reason.
    await page.getByTestId('entry-B-stop').click();
    await page.getByTestId('entry-B-message').getByText('entry B is already stopped').waitFor();

    await page.getByTestId('entry-B-start').click();
    await shows('B', 'active.running');
    await until('entry:B running in /debug/machines', async () => (await actorPath(daemon.api, 'entry:B')) === 'active.running');
    await page.getByTestId('entry-B-stats').getByText('pid').waitFor();
    await page.getByTestId('event-log').getByText('entry:B  active.running → stopped  (entry.stop)').first().waitFor();
  });

  it('lists a file dropped into an entry', async () => {
    await page.getByTestId('file-row-hello.txt').waitFor();
    await fsp.writeFile(path.join(dir, 'A/dropped.txt'), 'a file for the dashboard\n');
    const row = page.getByTestId('file-row-dropped.txt');
    await row.waitFor();
    expect(await row.textContent()).toContain('A ✓');
    // A file B owns but does not hold yet would show B …; report.pdf is on both.
    await page.getByTestId('file-row-backedup/report.pdf').getByText('B ✓').waitFor();
    await page.getByTestId('event-log').getByText('A changed dropped.txt').first().waitFor();
  });

  it("feeds mermaid's own parser the statecharts of both machines, from the API, the CLI and the page", async () => {
    const parse = (text: string) => page.evaluate((t) => (window as any).mermaid.parse(t), text);
    const { body } = await api(daemon.api, 'GET', '/debug/machines');
    for (const machine of ['entry', 'rules'] as const) {
      const fromApi = body.mermaid[machine] as string;
      expect(fromApi).toMatch(/^stateDiagram-v2\n/);
      expect(await parse(fromApi)).toBeTruthy();
      const cli = await run(process.execPath, [CLI, 'machines', '--format', 'mermaid', '--machine', machine, '--api', daemon.url]);
      expect(cli.stdout.trim()).toBe(fromApi.trim());
      expect(await parse(cli.stdout)).toBeTruthy();
      // With the current state marked, for every state the machine has.
      const paths = statePaths(body.machines[machine]);
      expect(paths.length).toBeGreaterThan(1);
      for (const p of paths) {
        expect(await parse(withCurrent(fromApi, machine, p)), `${machine} at ${p.join('.')}`).toBeTruthy();
        const own = await page.evaluate(([m, at]) => (window as any).ferryDashboard.toMermaid(m, at), [body.machines[machine], p] as const);
        expect(own).toContain('class ');
        expect(await parse(own), `the page's own text for ${machine} at ${p.join('.')}`).toBeTruthy();
      }
    }
    // The live actors' paths mark real states.
    const live = (body.actors as Actor[]).find((a) => a.id === 'entry:A')!;
    expect(await parse(withCurrent(body.mermaid.entry, 'entry', live.path))).toBeTruthy();
  });

  it('stages rules (showing a 400 reason), shows what a reload would change, and reloads', async () => {
    const text = page.getByTestId('rules-text');
    await until('the staged rules in the textarea', async () => (await text.inputValue()).includes('/backedup/'));
    expect(JSON.parse(await text.inputValue())).toEqual(SPEC_RULES);

    await text.fill(JSON.stringify([{ match: { path: '/' }, sync: ['C'] }]));
    await page.getByTestId('rules-stage').click();
    await page.getByTestId('rules-message').getByText('unknown entry "C"').waitFor();

    await text.fill('[oops');
    await page.getByTestId('rules-stage').click();
    await page.getByTestId('rules-message').getByText('not JSON').waitFor();

    const staged = [...SPEC_RULES, { match: { path: '/dropped.txt' }, sync: ['B'] }];
    await text.fill(JSON.stringify(staged, null, 2));
    await page.getByTestId('rules-stage').click();
    await page.getByTestId('rules-message').getByText('Staged').waitFor();
    expect((await api(daemon.api, 'GET', '/rules')).body.rules).toEqual(staged);
    const diffRow = page.getByTestId('diff-row-dropped.txt');
    await diffRow.waitFor();
    expect(await diffRow.textContent()).toContain('+ B');

    // Reload with B stopped: B owns dropped.txt but waits for it (… and a queued job).
    await page.getByTestId('entry-B-stop').click();
    await shows('B', 'stopped');
    await page.getByTestId('rules-reload').click();
    await page.getByTestId('rules-message').getByText('Reloaded').waitFor();
    await diffRow.waitFor({ state: 'detached' });
    await page.getByTestId('file-row-dropped.txt').getByText('B …').waitFor();
    await page.getByTestId('transfers-B').getByText('1 queued').waitFor();

    // The next change, staged only: the diff shows it.
    await text.fill(JSON.stringify([...staged, { match: { path: '/hello.txt' }, sync: ['B'] }], null, 2));
    await page.getByTestId('rules-stage').click();
    await page.getByTestId('diff-row-hello.txt').getByText('+ B').waitFor();
    await page.getByTestId('event-log').getByText('rules  reloading → ready').first().waitFor();

    if (process.env.UPDATE_SCREENSHOT) {
      await fsp.mkdir(path.join(REPO, 'docs'), { recursive: true });
      await page.screenshot({ path: path.join(REPO, 'docs/dashboard.png'), fullPage: true });
    }
    const shot = await page.screenshot({ fullPage: true });
    expect(shot.length).toBeGreaterThan(10_000);

    // B catches up once started.
    await page.getByTestId('entry-B-start').click();
    await shows('B', 'active.running');
    await page.getByTestId('file-row-dropped.txt').getByText('B ✓').waitFor();
    expect(fs.existsSync(path.join(dir, 'B/dropped.txt'))).toBe(true);
    await page.getByTestId('transfers-B').getByText('0 queued').waitFor();
  });

  it('pages through the file list 50 at a time', async () => {
    await Promise.all(
      Array.from({ length: 55 }, (_, i) => fsp.writeFile(path.join(dir, 'A', `many-${String(i).padStart(2, '0')}.txt`), `${i}\n`)),
    );
    await until('55 more files in the catalogue', async () => (await api(daemon.api, 'GET', '/files?limit=1000')).body.files.length >= 59);
    const next = page.getByTestId('files-next');
    await until('the next page enabled', () => next.isEnabled());
    expect(await page.locator('[data-testid="files-table"] tbody tr').count()).toBe(50);
    await next.click();
    await page.getByTestId('files-range').getByText(/^files 51–/).waitFor();
    await page.getByTestId('file-row-notes.txt').waitFor();
    await page.getByTestId('files-prev').click();
    await page.getByTestId('files-range').getByText(/^files 1–50$/).waitFor();
  });

  it('draws running transfers as progress bars with their figures, and the queues', async () => {
    // A transfer long enough to watch is hard to catch on a fast disk: the API's answer is faked.
    const MB = 1024 * 1024;
    const fake = {
      entries: [
        { name: 'A', queued: 0, running: [], waiting: [] },
        {
          name: 'B',
          queued: 3,
          running: [{ id: 7, kind: 'upload', filename: 'videos/big.iso', source: 'A', bytes: 256 * MB, size: 1024 * MB, rate: 50 * MB, started: Date.now() / 1000 }],
          waiting: [{ id: 8, kind: 'upload', filename: 'videos/next.iso', size: 2 * MB, attempts: 2, lastError: 'disk full' }],
        },
      ],
    };
    await page.route('**/api/v1.0/transfers', (route) => route.fulfill({ json: fake }));
    try {
      const job = page.getByTestId('transfer-B-videos/big.iso');
      await job.getByText('256 MB / 1.0 GB · 25 % · 50 MB/s').waitFor();
      expect(await job.textContent()).toContain('A → B: videos/big.iso');
      expect(await job.locator('.bar > div').evaluate((d) => (d as HTMLElement).style.width)).toBe('25%');
      await page.getByTestId('transfers-B').getByText('1 running · 3 queued').waitFor();
      await page.getByTestId('transfers-B').getByText('upload videos/next.iso (2.0 MB) · 2 attempts · disk full').waitFor();
    } finally {
      await page.unroute('**/api/v1.0/transfers');
    }
    await page.getByTestId('transfers-B').getByText('0 running · 0 queued').waitFor();
  });

  it('loads nothing from outside 127.0.0.1 and raises no script error', async () => {
    expect(requests.length).toBeGreaterThan(5);
    const outside = requests.filter((u) => {
      if (u.startsWith('data:') || u.startsWith('blob:')) return false;
      return new URL(u).hostname !== '127.0.0.1';
    });
    expect(outside).toEqual([]);
    expect(requests).toContain(daemon.url + '/assets/mermaid.min.js');
    expect(problems).toEqual([]);
  });
});
