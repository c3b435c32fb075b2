import { fidOf } from '../src/paths.js';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { api, CLI, REPO, SPEC_RULES, startDaemon, tempDir, until, writeSetup, writeWhole, type RunningDaemon, daemonHarness } from './helpers.js';

/**
 * End to end: the BUILT `ferry` command as a real subprocess against a real daemon, checking
 * stdout, stderr and the exit code of each success and each failure the README documents:
 * 0 done, 1 refused (the API's reason on stderr), 2 bad usage, 3 unreachable, 4 timed out.
 */

const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli.js ...args`; `$FERRY_API` is unset unless `env` sets it. */
function ferry(args: string[], opts: { api?: string; env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (!opts.env || !('FERRY_API' in opts.env)) delete env.FERRY_API;
  const argv = [CLI, ...(opts.api ? ['--api', opts.api] : []), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {}); // a command that does not read its stdin
    child.stdin.end(opts.input ?? '');
  });
}

const harness = daemonHarness('ferry-cli-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const at = (entry: string, rel: string) => path.join(dir, entry, rel);

async function put(entry: string, rel: string, content: string | Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(at(entry, rel)), { recursive: true });
  // Whole in one step: a half-written file seen and synced would make a version of its own.
  await writeWhole(at(entry, rel), content);
}

const read = (entry: string, rel: string): string | null => {
  try {
    return fs.readFileSync(at(entry, rel), 'utf8');
  } catch {
    return null;
  }
};

/** A daemon on entries (each rooted in the folder of its name) and rules, in `dir`. */
async function boot(rules: unknown[] = SPEC_RULES, entries = ['A', 'B']): Promise<RunningDaemon> {
  const setupFile = await writeSetup(dir, { entries: Object.fromEntries(entries.map((e) => [e, e])), rules });
  const d = await startDaemon(setupFile);
  daemons.push(d);
  return d;
}

interface FileJson {
  fid: string;
  filename: string;
  size: number;
  owners: string[];
  uptodate: string[];
}

async function files(d: RunningDaemon): Promise<FileJson[]> {
  const res = await api(d.api, 'GET', '/files?limit=1000');
  expect(res.status).toBe(200);
  return res.body.files as FileJson[];
}

/** Waits until the catalogue lists exactly these files with these owners and up-to-date entries. */
async function settled(d: RunningDaemon, expected: Record<string, { owners: string[]; uptodate: string[] }>): Promise<FileJson[]> {
  const list = await until(`files to settle as ${JSON.stringify(expected)}`, async () => {
    const list = await files(d);
    const got = Object.fromEntries(list.map((f) => [f.filename, { owners: f.owners, uptodate: f.uptodate }]));
    return JSON.stringify(got) === JSON.stringify(expected) ? list : null;
  });
  return list!;
}

const status = async (d: RunningDaemon, name: string) => (await api(d.api, 'GET', `/entries/${name}/status`)).body.status as string;

/** The whitespace-separated cells of each line of a table. */
const cells = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));

const EXIT_CODE_LINES = [/^ {2}0 {2}done$/m, /^ {2}1 {2}the daemon refused/m, /^ {2}2 {2}bad usage/m, /^ {2}3 {2}the daemon is unreachable/m, /^ {2}4 {2}timed out/m];

describe('ferry entries', () => {
  it('lists, shows, prints the status and the stats of the entries', async () => {
    const d = await boot();

    const list = await ferry(['entries'], { api: d.url });
    expect(list).toMatchObject({ code: 0, stderr: '' });
    // The absolute root of each entry (the API's root_path), not the setup's relative one.
    expect(cells(list.stdout)).toEqual([
      ['NAME', 'DRIVER', 'STATE', 'ROOT'],
      ['A', 'local_storage', 'active', path.join(dir, 'A')],
      ['B', 'local_storage', 'active', path.join(dir, 'B')],
    ]);

    // --json: one JSON document, with the API's fields.
    const json = await ferry(['entries', '--json'], { api: d.url });
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const parsed = JSON.parse(json.stdout);
    expect(parsed.entries).toEqual([
      { name: 'A', driver: 'local_storage', options: { root: 'A' }, root_path: path.join(dir, 'A'), ignore: [], status: 'active' },
      { name: 'B', driver: 'local_storage', options: { root: 'B' }, root_path: path.join(dir, 'B'), ignore: [], status: 'active' },
    ]);

    // $FERRY_API instead of --api; --api wins over it.
    const viaEnv = await ferry(['entries', 'status', 'A'], { env: { FERRY_API: d.url } });
    expect(viaEnv).toEqual({ code: 0, stdout: 'active\n', stderr: '' });
    const overridden = await ferry(['entries', 'status', 'A'], { api: d.url, env: { FERRY_API: 'http://127.0.0.1:1' } });
    expect(overridden).toEqual({ code: 0, stdout: 'active\n', stderr: '' });

    const show = await ferry(['entries', 'show', 'A'], { api: d.url });
    expect(show).toMatchObject({ code: 0, stderr: '' });
    expect(cells(show.stdout)).toEqual([
      ['name:', 'A'],
      ['driver:', 'local_storage'],
      ['root:', 'A'],
      ['root_path:', path.join(dir, 'A')],
      ['ignore:', '-'],
    ]);
    const showJson = await ferry(['entries', 'show', 'B', '--json'], { api: d.url });
    expect(JSON.parse(showJson.stdout)).toEqual((await api(d.api, 'GET', '/entries/B')).body);

    expect(await ferry(['entries', 'status', 'B'], { api: d.url })).toEqual({ code: 0, stdout: 'active\n', stderr: '' });
    const statusJson = await ferry(['entries', 'status', 'A', '--json'], { api: d.url });
    expect(statusJson.code).toBe(0);
    expect(JSON.parse(statusJson.stdout)).toMatchObject({ name: 'A', status: 'active' });

    const stats = await ferry(['entries', 'stats', 'A'], { api: d.url });
    expect(stats).toMatchObject({ code: 0, stderr: '' });
    const pid = (await api(d.api, 'GET', '/entries/A/stats')).body.info.pid as number;
    expect(pid).toBeGreaterThan(0);
    expect(pid).not.toBe(d.process.pid);
    if (fs.existsSync(`/proc/${pid}/stat`)) {
      // The worker is the daemon's own child process.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])).toBe(d.process.pid);
    }
    // For a person: the start in local time with the age, units on every number.
    const raw = (await api(d.api, 'GET', '/entries/A/stats')).body;
    const started = new Date(raw.info.started * 1000);
    const two = (n: number) => String(n).padStart(2, '0');
    const startedText = `${started.getFullYear()}-${two(started.getMonth() + 1)}-${two(started.getDate())} ${two(started.getHours())}:${two(started.getMinutes())}:${two(started.getSeconds())}`;
    const lines = stats.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split(':')[0])).toEqual(['name', 'pid', 'started', 'cpu', 'cpu time', 'memory', 'restarts']);
    expect(lines[0]).toMatch(/^name:\s+A$/);
    expect(lines[1]).toMatch(new RegExp(`^pid:\\s+${pid}$`));
    expect(lines[2]).toMatch(new RegExp(`^started:\\s+${startedText} \\(age (\\d+ s|\\d+ min \\d+ s)\\)$`));
    expect(lines[3]).toMatch(/^cpu:\s+\d+\.\d %$/);
    expect(lines[4]).toMatch(/^cpu time:\s+\d+:\d\d\.\d\d$/);
    expect(lines[5]).toMatch(/^memory:\s+\d+(\.\d)? [KMG]iB resident \(\d+\.\d % of RAM\), \d+(\.\d)? [KMGT]iB virtual$/);
    expect(lines[5]).toContain(`${raw.info.mem_info1.slice(0, -1)} ${raw.info.mem_info1.slice(-1)}iB resident`);
    expect(lines[6]).toMatch(/^restarts:\s+0$/);
    // --json: the API's document as it is.
    const statsJson = await ferry(['entries', 'stats', 'A', '--json'], { api: d.url });
    const statsBody = JSON.parse(statsJson.stdout);
    expect(statsBody).toMatchObject({ name: 'A', status: 'ok', info: { pid } });
    expect(Object.keys(statsBody.info).sort()).toEqual(
      ['age', 'cpu', 'create_time', 'ctime', 'mem', 'mem_info1', 'mem_info2', 'pid', 'restarts', 'started'].sort(),
    );
    expect(statsBody.info.mem_info1).toMatch(/^\d+(\.\d)?[BKMGT]$/);
  });

  it('stops, starts and restarts entries, with exit 1 and the API reason for each refusal', async () => {
    const d = await boot();

    expect(await ferry(['entries', 'stop', 'B'], { api: d.url })).toEqual({ code: 0, stdout: 'B: stopped\n', stderr: '' });
    expect(await status(d, 'B')).toBe('stopped');
    expect(await ferry(['entries', 'status', 'B'], { api: d.url })).toEqual({ code: 0, stdout: 'stopped\n', stderr: '' });

    expect(await ferry(['entries', 'stop', 'B'], { api: d.url })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'ferry: entry B is already stopped\n',
    });
    // --json: the refusal as a document on stdout too, the reason still on stderr.
    const stopJson = await ferry(['entries', 'stop', 'B', '--json'], { api: d.url });
    expect(stopJson.code).toBe(1);
    expect(stopJson.stderr).toBe('ferry: entry B is already stopped\n');
    expect(JSON.parse(stopJson.stdout)).toEqual({ name: 'B', reason: 'entry B is already stopped', status: 'error' });

    // A stopped entry has no worker to show.
    expect(await ferry(['entries', 'stats', 'B'], { api: d.url })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'ferry: entry B is not running\n',
    });

    expect(await ferry(['entries', 'restart', 'B'], { api: d.url })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'ferry: entry B is not running\n',
    });
    expect(await status(d, 'B')).toBe('stopped');

    // Each in turn, each reported: B starts, A is refused; exit 1 since one was refused.
    expect(await ferry(['entries', 'start', 'B', 'A'], { api: d.url })).toEqual({
      code: 1,
      stdout: 'B: started\n',
      stderr: 'ferry: entry A is already running\n',
    });
    expect(await status(d, 'B')).toBe('active');
    expect(await status(d, 'A')).toBe('active');
    expect((await api(d.api, 'GET', '/entries/B/stats')).status).toBe(200);

    // A restart gives the entry a new worker.
    const before = (await api(d.api, 'GET', '/entries/A/stats')).body.info.pid as number;
    expect(await ferry(['entries', 'restart', 'A'], { api: d.url })).toEqual({ code: 0, stdout: 'A: restarted\n', stderr: '' });
    expect(await status(d, 'A')).toBe('active');
    const after = (await api(d.api, 'GET', '/entries/A/stats')).body.info.pid as number;
    expect(after).not.toBe(before);

    // Several at once, all accepted.
    expect(await ferry(['entries', 'stop', 'A', 'B'], { api: d.url })).toEqual({
      code: 0,
      stdout: 'A: stopped\nB: stopped\n',
      stderr: '',
    });
    expect(await ferry(['entries', 'start', 'A', 'B'], { api: d.url })).toEqual({
      code: 0,
      stdout: 'A: started\nB: started\n',
      stderr: '',
    });
    expect(await status(d, 'A')).toBe('active');
    expect(await status(d, 'B')).toBe('active');
  });

  it('a start that cannot succeed (root folder missing): exit 1 with the reason, the entry stays stopped', async () => {
    const d = await boot();
    expect((await ferry(['entries', 'stop', 'B'], { api: d.url })).code).toBe(0);
    await fsp.rm(path.join(dir, 'B'), { recursive: true });
    const run = await ferry(['entries', 'start', 'B'], { api: d.url });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^ferry: entry B could not start: .+\n$/);
    expect(await status(d, 'B')).toBe('stopped');
    await fsp.mkdir(path.join(dir, 'B'));
    expect(await ferry(['entries', 'start', 'B'], { api: d.url })).toEqual({ code: 0, stdout: 'B: started\n', stderr: '' });
    expect(await status(d, 'B')).toBe('active');
  });

  it('an unknown entry: exit 1 with "entry C not found", whatever the command', async () => {
    const d = await boot();
    const notFound = { code: 1, stdout: '', stderr: 'ferry: entry C not found\n' };
    expect(await ferry(['entries', 'status', 'C'], { api: d.url })).toEqual(notFound);
    expect(await ferry(['entries', 'show', 'C'], { api: d.url })).toEqual(notFound);
    expect(await ferry(['entries', 'stats', 'C'], { api: d.url })).toEqual(notFound);
    expect(await ferry(['entries', 'stop', 'C'], { api: d.url })).toEqual(notFound);
    expect(await ferry(['entries', 'wait', 'C', '--state', 'active'], { api: d.url })).toEqual(notFound);
    // The known one before it is still done.
    expect(await ferry(['entries', 'stop', 'B', 'C'], { api: d.url })).toEqual({
      code: 1,
      stdout: 'B: stopped\n',
      stderr: 'ferry: entry C not found\n',
    });
    expect(await status(d, 'B')).toBe('stopped');
  });

  it('entries wait: exit 4 on timeout, 0 once in the state, and --synced once caught up', async () => {
    const d = await boot();

    const timedOut = await ferry(['entries', 'wait', 'B', '--state', 'stopped', '--timeout', '500ms'], { api: d.url });
    expect(timedOut.code).toBe(4);
    expect(timedOut.stdout).toBe('');
    expect(timedOut.stderr).toBe('ferry: timed out after 500ms waiting for entry B to be stopped (it is active)\n');
    expect(await status(d, 'B')).toBe('active');

    expect(await ferry(['entries', 'wait', 'A', '--state', 'active'], { api: d.url })).toEqual({
      code: 0,
      stdout: 'A: active\n',
      stderr: '',
    });

    // B stopped; files for B (PDFs under /backedup/) arrive in A meanwhile.
    expect((await ferry(['entries', 'stop', 'B'], { api: d.url })).code).toBe(0);
    expect((await ferry(['entries', 'wait', 'B', '--state', 'stopped', '--timeout', '10s'], { api: d.url })).code).toBe(0);
    const pdfs = Array.from({ length: 8 }, (_, i) => `backedup/doc-${i}.pdf`);
    for (const [i, name] of pdfs.entries()) await put('A', name, `%PDF-1.7\n${'x'.repeat(50_000 + i)}\n`);
    await put('A', 'notes.txt', 'A only\n');
    await settled(d, {
      ...Object.fromEntries(pdfs.map((p) => [p, { owners: ['A', 'B'], uptodate: ['A'] }])),
      'notes.txt': { owners: ['A'], uptodate: ['A'] },
    });
    expect(fs.existsSync(at('B', 'backedup'))).toBe(false);

    // A stopped B is not "active --synced" yet.
    const notYet = await ferry(['entries', 'wait', 'B', '--state', 'active', '--synced', '--timeout', '300ms'], { api: d.url });
    expect(notYet.code).toBe(4);
    expect(notYet.stderr).toMatch(/^ferry: timed out after 300ms waiting for entry B to be active \(it is stopped\)\n$/);

    // The wait starts before B does, and returns only once B holds every file it owns.
    const waiting = ferry(['entries', 'wait', 'B', '--state', 'active', '--synced', '--timeout', '60s'], { api: d.url });
    expect(await ferry(['entries', 'start', 'B'], { api: d.url })).toEqual({ code: 0, stdout: 'B: started\n', stderr: '' });
    expect(await waiting).toEqual({ code: 0, stdout: 'B: active, up to date\n', stderr: '' });
    // Right when it returns, B's folder holds them all, with their content.
    for (const [i, name] of pdfs.entries()) expect(read('B', name)).toBe(`%PDF-1.7\n${'x'.repeat(50_000 + i)}\n`);
    expect(read('B', 'notes.txt')).toBeNull();
    for (const f of await files(d)) if (f.owners.includes('B')) expect(f.uptodate).toContain('B');

    // Once synced, it returns at once.
    expect(await ferry(['entries', 'wait', 'B', '--state', 'active', '--synced', '--timeout', '5s'], { api: d.url })).toEqual({
      code: 0,
      stdout: 'B: active, up to date\n',
      stderr: '',
    });
  });
});

describe('ferry: daemon unreachable, usage, help, version', () => {
  it('exit 3 naming the URL when no daemon listens there', async () => {
    const d = await boot();
    const url = d.url;
    await d.stop();
    for (const args of [['entries'], ['entries', 'status', 'A'], ['entries', 'stop', 'B'], ['files'], ['rules'], ['rules', 'diff']]) {
      const run = await ferry(args, { api: url });
      expect(run.code, args.join(' ')).toBe(3);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(url);
      expect(run.stderr).toMatch(/^ferry: cannot reach the daemon at /);
    }
    const viaEnv = await ferry(['entries', 'wait', 'A', '--state', 'active'], { env: { FERRY_API: url } });
    expect(viaEnv.code).toBe(3);
    expect(viaEnv.stderr).toContain(url);
  });

  it('exit 3 naming the URL when what answers there is not a Ferry daemon', async () => {
    const server = http.createServer((_req, res) => res.end('<html>hello</html>'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const run = await ferry(['entries'], { api: url });
      expect(run.code).toBe(3);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(url);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a trailing slash on the --api URL is fine', async () => {
    const d = await boot();
    expect(await ferry(['entries', 'status', 'A'], { api: `${d.url}/` })).toEqual({ code: 0, stdout: 'active\n', stderr: '' });
  });

  it('exit 2 with a message on stderr for bad usage, before any call to the daemon', async () => {
    // A URL where nothing listens: a usage error must be reported as such (2), not as 3.
    const nowhere = 'http://127.0.0.1:9';
    const cases: [string[], RegExp][] = [
      [['entries', '--bogus'], /^ferry: unknown option --bogus\n/],
      [['frobnicate'], /^ferry: unknown command: frobnicate\n/],
      [['entries', 'frobnicate', 'A'], /^ferry: unknown command: entries frobnicate A\n/],
      [['entries', 'status'], /^ferry: missing argument: ferry entries status NAME\n/],
      [['entries', 'stop'], /^ferry: missing argument: ferry entries stop NAME…\n/],
      [['entries', 'show', 'A', 'B'], /^ferry: too many arguments: ferry entries show NAME\n/],
      [['entries', 'wait', 'A'], /^ferry: entries wait needs --state active\|stopped\n/],
      [['entries', 'wait', 'A', '--state', 'running'], /^ferry: --state: must be active, stopped or restarting \(got running\)\n/],
      [['entries', 'wait', 'A', '--state', 'active', '--timeout', 'soon'], /^ferry: --timeout: must be a duration such as 30s, 500ms or 2m \(got soon\)\n/],
      [['entries', 'wait', 'A', '--state'], /^ferry: .*--state/],
      [['entries', '--state', 'active'], /^ferry: ferry entries takes no --state\n/],
      [['files', '--limit', 'x'], /^ferry: --limit: must be a whole number from 1 to 1000 \(got x\)\n/],
      [['files', '--offset=-1'], /^ferry: --offset: must be a whole number 0 or more \(got -1\)\n/],
      [['files', '--all', '--limit', '5'], /^ferry: --all takes neither --offset nor --limit\n/],
      [['rules', 'set'], /^ferry: missing argument: ferry rules set FILE\|-\n/],
      [['rules', 'set', path.join(dir ?? '/nonexistent', 'no-such-file.json')], /^ferry: cannot read .*no-such-file\.json/],
    ];
    for (const [args, message] of cases) {
      const run = await ferry(args, { api: nowhere });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout, args.join(' ')).toBe('');
      expect(run.stderr, args.join(' ')).toMatch(message);
      // The hint names the help of the command given, or ferry's.
      expect(run.stderr, args.join(' ')).toMatch(/Try 'ferry( [a-z]+)* --help'\.\n$/);
    }
    // No command at all: the usage, on stderr, exit 2.
    const bare = await ferry([], { api: nowhere });
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toMatch(/^Usage: ferry /);

    const badUrl = await ferry(['entries'], { api: 'not a url' });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/^ferry: --api: must be an http or https URL \(got not a url\)\n/);
  });

  it('--help on ferry and on commands: exit 0, usage on stdout with the exit codes; --version', async () => {
    const top = await ferry(['--help']);
    expect(top.code).toBe(0);
    expect(top.stderr).toBe('');
    expect(top.stdout).toMatch(/^Usage: ferry /);
    for (const line of EXIT_CODE_LINES) expect(top.stdout).toMatch(line);
    for (const synopsis of ['ferry entries wait NAME', 'ferry rules set FILE|-', 'ferry rules diff', 'ferry files show FID|PATH', 'ferry entries stats NAME']) {
      expect(top.stdout).toContain(synopsis);
    }

    const commands: [string[], string][] = [
      [['entries', '--help'], 'Usage: ferry entries [COMMAND] [ARGS]\n'],
      [['entries', 'wait', '--help'], 'Usage: ferry entries wait NAME --state active|stopped [--synced] [--timeout 30s]\n'],
      [['rules', 'set', '--help'], 'Usage: ferry rules set FILE|-\n'],
      [['files', '--help'], 'Usage: ferry files [COMMAND] [ARGS]\n       ferry files [--offset N] [--limit N] [--all] [--pending NAME] [--failing] [--search TEXT]\n'],
      [['--help', 'entries', 'stop'], 'Usage: ferry entries stop NAME…\n'],
    ];
    for (const [args, first] of commands) {
      const run = await ferry(args, { api: 'http://127.0.0.1:9' });
      expect(run.code, args.join(' ')).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout.startsWith(first), run.stdout).toBe(true);
      for (const line of EXIT_CODE_LINES) expect(run.stdout).toMatch(line);
    }
    const wait = await ferry(['entries', 'wait', '--help']);
    expect(wait.stdout).toMatch(/--state STATE/);
    expect(wait.stdout).toMatch(/--timeout DURATION/);

    expect(await ferry(['--version'])).toEqual({ code: 0, stdout: `ferry ${version}\n`, stderr: '' });
  });
});

describe('ferry rules', () => {
  it('prints, stages (file and stdin), refuses invalid rules, and reloads', async () => {
    const d = await boot();
    const setupFile = path.join(dir, 'setup.json');

    const shown = await ferry(['rules'], { api: d.url });
    expect(shown).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(shown.stdout)).toEqual({ rules: SPEC_RULES });

    // From a file, as {"rules": [...]}.
    const first = [{ match: { path: '/' }, sync: ['A', 'B'] }];
    const file = path.join(dir, 'rules.json');
    await fsp.writeFile(file, JSON.stringify({ rules: first }));
    const set = await ferry(['rules', 'set', file], { api: d.url });
    expect(set.code).toBe(0);
    expect(set.stderr).toBe('');
    expect(set.stdout).toMatch(/staged/);
    expect((await api(d.api, 'GET', '/rules')).body).toEqual({ rules: first });
    expect(JSON.parse((await ferry(['rules'], { api: d.url })).stdout)).toEqual({ rules: first });

    // From stdin, as a bare list.
    const second = [
      { match: { path: '/' }, sync: ['A'] },
      { match: { path: '/photos/', mime: ['image/*'] }, sync: ['B'] },
    ];
    const fromStdin = await ferry(['rules', 'set', '-', '--json'], { api: d.url, input: JSON.stringify(second) });
    expect(fromStdin).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(fromStdin.stdout)).toEqual({ status: 'ok' });
    expect((await api(d.api, 'GET', '/rules')).body).toEqual({ rules: second });

    // Refused by the daemon: exit 1 with its reason; nothing staged.
    const unknown = await ferry(['rules', 'set', '-'], {
      api: d.url,
      input: JSON.stringify({ rules: [{ match: { path: '/' }, sync: ['C'] }] }),
    });
    expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'ferry: rules[0].sync[0]: unknown entry "C"\n' });
    const later = await ferry(['rules', 'set', '-'], {
      api: d.url,
      input: JSON.stringify([{ match: { path: '/' }, sync: ['A'] }, { match: { path: 'docs' }, sync: ['B'] }]),
    });
    expect(later).toEqual({ code: 1, stdout: '', stderr: 'ferry: rules[1].match.path: must start with "/"\n' });
    expect((await api(d.api, 'GET', '/rules')).body).toEqual({ rules: second });

    // Not JSON: bad usage, nothing sent.
    const broken = await ferry(['rules', 'set', '-'], { api: d.url, input: '{"rules": [' });
    expect(broken.code).toBe(2);
    expect(broken.stdout).toBe('');
    expect(broken.stderr).toMatch(/^ferry: stdin: invalid JSON: /);
    await fsp.writeFile(file, 'not json');
    const brokenFile = await ferry(['rules', 'set', file], { api: d.url });
    expect(brokenFile.code).toBe(2);
    expect(brokenFile.stderr).toContain(`ferry: ${file}: invalid JSON: `);
    expect((await api(d.api, 'GET', '/rules')).body).toEqual({ rules: second });

    // Staging writes nothing into the setup file; a reload does.
    expect(JSON.parse(fs.readFileSync(setupFile, 'utf8')).rules).toEqual(SPEC_RULES);
    expect(await ferry(['rules', 'reload'], { api: d.url })).toEqual({ code: 0, stdout: 'rules applied\n', stderr: '' });
    expect(JSON.parse(fs.readFileSync(setupFile, 'utf8')).rules).toEqual(second);
    expect((await api(d.api, 'GET', '/rules')).body).toEqual({ rules: second });
    const reloadJson = await ferry(['rules', 'reload', '--json'], { api: d.url });
    expect(reloadJson.code).toBe(0);
    expect(JSON.parse(reloadJson.stdout)).toEqual({ status: 'ok' });

    // The reloaded rules are in force: a photo goes to B, a text file does not.
    await put('A', 'photos/cat.png', 'png');
    await put('A', 'readme.txt', 'txt');
    await settled(d, {
      'photos/cat.png': { owners: ['A', 'B'], uptodate: ['A', 'B'] },
      'readme.txt': { owners: ['A'], uptodate: ['A'] },
    });
    expect(read('B', 'photos/cat.png')).toBe('png');
    expect(read('B', 'readme.txt')).toBeNull();
  });

  it('rules diff shows owners gained and lost, changes nothing; reload applies exactly that', async () => {
    const OLD = [
      { match: { path: '/' }, sync: ['A'] },
      { match: { path: '/docs/' }, sync: ['B'] },
    ];
    const NEW = [
      { match: { path: '/' }, sync: ['A'] },
      { match: { path: '/docs/' }, sync: ['C'], ban: ['B'] },
      { match: { path: '/x.txt' }, sync: ['B'] },
    ];
    await put('A', 'docs/a.txt', 'doc a\n');
    await put('A', 'x.txt', 'x\n');
    const d = await boot(OLD, ['A', 'B', 'C']);
    const before = await settled(d, {
      'docs/a.txt': { owners: ['A', 'B'], uptodate: ['A', 'B'] },
      'x.txt': { owners: ['A'], uptodate: ['A'] },
    });
    await until('docs/a.txt in B', () => read('B', 'docs/a.txt') === 'doc a\n');

    // Nothing staged beyond the active rules: no change.
    expect(await ferry(['rules', 'diff'], { api: d.url })).toEqual({ code: 0, stdout: 'a reload would change no owner\n', stderr: '' });

    expect((await ferry(['rules', 'set', '-'], { api: d.url, input: JSON.stringify({ rules: NEW }) })).code).toBe(0);

    const diff = await ferry(['rules', 'diff'], { api: d.url });
    expect(diff).toMatchObject({ code: 0, stderr: '' });
    expect(cells(diff.stdout)).toEqual([
      ['FILENAME', 'GAINS', 'LOSES'],
      ['docs/a.txt', 'C', 'B'],
      ['x.txt', 'B', '-'],
    ]);
    const diffJson = await ferry(['rules', 'diff', '--json'], { api: d.url });
    expect(diffJson.code).toBe(0);
    const byName = Object.fromEntries(before.map((f) => [f.filename, f.fid]));
    expect(JSON.parse(diffJson.stdout)).toEqual({
      changes: [
        { fid: byName['docs/a.txt'], filename: 'docs/a.txt', gain: ['C'], lose: ['B'] },
        { fid: byName['x.txt'], filename: 'x.txt', gain: ['B'], lose: [] },
      ],
    });
    expect(JSON.parse(diffJson.stdout)).toEqual((await api(d.api, 'GET', '/rules/diff')).body);

    // Nothing changed yet: same owners, no copy made, none removed, the setup file untouched.
    expect(await files(d)).toEqual(before);
    expect(read('C', 'docs/a.txt')).toBeNull();
    expect(read('B', 'x.txt')).toBeNull();
    expect(read('B', 'docs/a.txt')).toBe('doc a\n');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'setup.json'), 'utf8')).rules).toEqual(OLD);

    expect(await ferry(['rules', 'reload'], { api: d.url })).toEqual({ code: 0, stdout: 'rules applied\n', stderr: '' });
    expect(await ferry(['rules', 'diff'], { api: d.url })).toEqual({ code: 0, stdout: 'a reload would change no owner\n', stderr: '' });
    expect(JSON.parse((await ferry(['rules', 'diff', '--json'], { api: d.url })).stdout)).toEqual({ changes: [] });

    // The files reached their new owners, and left the one that lost it.
    await settled(d, {
      'docs/a.txt': { owners: ['A', 'C'], uptodate: ['A', 'C'] },
      'x.txt': { owners: ['A', 'B'], uptodate: ['A', 'B'] },
    });
    await until('docs/a.txt in C', () => read('C', 'docs/a.txt') === 'doc a\n');
    await until('x.txt in B', () => read('B', 'x.txt') === 'x\n');
    await until('docs/a.txt gone from B', () => read('B', 'docs/a.txt') === null);
    expect(read('A', 'docs/a.txt')).toBe('doc a\n');
    expect(read('A', 'x.txt')).toBe('x\n');
    expect(read('C', 'x.txt')).toBeNull();
    // Still nothing left to change once the moves are done.
    expect(await ferry(['rules', 'diff'], { api: d.url })).toEqual({ code: 0, stdout: 'a reload would change no owner\n', stderr: '' });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'setup.json'), 'utf8')).rules).toEqual(NEW);

    // Rules in order: a ban after a sync removes the owner; a sync after the ban puts it back.
    const banLast = [...NEW, { match: { path: '/' }, ban: ['B'] }];
    expect((await ferry(['rules', 'set', '-'], { api: d.url, input: JSON.stringify(banLast) })).code).toBe(0);
    expect(cells((await ferry(['rules', 'diff'], { api: d.url })).stdout)).toEqual([
      ['FILENAME', 'GAINS', 'LOSES'],
      ['x.txt', '-', 'B'],
    ]);
    const banFirst = [{ match: { path: '/' }, ban: ['B'] }, ...NEW];
    expect((await ferry(['rules', 'set', '-'], { api: d.url, input: JSON.stringify(banFirst) })).code).toBe(0);
    expect(await ferry(['rules', 'diff'], { api: d.url })).toEqual({ code: 0, stdout: 'a reload would change no owner\n', stderr: '' });
  });
});

describe('ferry files', () => {
  it('lists with paging, shows one file by path or fid, and refuses an unknown one', async () => {
    const d = await boot();
    await put('A', 'a.txt', 'aaa');
    await put('A', 'b.txt', 'bbbbb');
    await put('A', 'backedup/c.pdf', '%PDF-1.7\ncc');
    const all = await settled(d, {
      'a.txt': { owners: ['A'], uptodate: ['A'] },
      'b.txt': { owners: ['A'], uptodate: ['A'] },
      'backedup/c.pdf': { owners: ['A', 'B'], uptodate: ['A', 'B'] },
    });

    const list = await ferry(['files'], { api: d.url });
    expect(list).toMatchObject({ code: 0, stderr: '' });
    expect(cells(list.stdout)).toEqual([
      ['FILENAME', 'SIZE', 'OWNERS', 'UPTODATE'],
      ['a.txt', '3', 'A', 'A'],
      ['b.txt', '5', 'A', 'A'],
      ['backedup/c.pdf', '11', 'A,B', 'A,B'],
    ]);

    const page = await ferry(['files', '--offset', '1', '--limit', '1'], { api: d.url });
    expect(page.code).toBe(0);
    expect(cells(page.stdout)).toEqual([
      ['FILENAME', 'SIZE', 'OWNERS', 'UPTODATE'],
      ['b.txt', '5', 'A', 'A'],
    ]);
    const last = await ferry(['files', '--offset=2', '--limit=1', '--json'], { api: d.url });
    expect(JSON.parse(last.stdout)).toEqual({ files: [all[2]] });
    const beyond = await ferry(['files', '--offset', '3'], { api: d.url });
    expect(beyond).toEqual({ code: 0, stdout: 'FILENAME  SIZE  OWNERS  UPTODATE\n', stderr: '' });
    const limit0 = await ferry(['files', '--limit', '0', '--json'], { api: d.url });
    expect(limit0).toEqual({
      code: 2,
      stdout: '',
      stderr: "ferry: --limit: must be a whole number from 1 to 1000 (got 0)\nTry 'ferry files --help'.\n",
    });

    const json = await ferry(['files', '--json'], { api: d.url });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ files: all });
    const allJson = await ferry(['files', '--all', '--json'], { api: d.url });
    expect(JSON.parse(allJson.stdout)).toEqual({ files: all });

    const limitX = await ferry(['files', '--limit', 'x'], { api: d.url });
    expect(limitX.code).toBe(2);
    expect(limitX.stdout).toBe('');
    expect(limitX.stderr).toMatch(/^ferry: --limit: must be a whole number from 1 to 1000 \(got x\)\n/);

    // By path (with or without a leading slash) and by fid (any case): the same metadata.
    const c = all[2];
    const byPath = await ferry(['files', 'show', 'backedup/c.pdf'], { api: d.url });
    expect(byPath).toMatchObject({ code: 0, stderr: '' });
    expect(cells(byPath.stdout)).toEqual([
      ['fid:', c.fid],
      ['filename:', 'backedup/c.pdf'],
      ['size:', '11'],
      ['owners:', 'A,B'],
      ['uptodate:', 'A,B'],
    ]);
    expect(await ferry(['files', 'show', c.fid], { api: d.url })).toEqual(byPath);
    expect(await ferry(['files', 'show', c.fid.toUpperCase()], { api: d.url })).toEqual(byPath);
    expect(await ferry(['files', 'show', '/backedup/c.pdf'], { api: d.url })).toEqual(byPath);
    const showJson = await ferry(['files', 'show', 'a.txt', '--json'], { api: d.url });
    expect(JSON.parse(showJson.stdout)).toEqual((await api(d.api, 'GET', `/files/${all[0].fid}/metadata`)).body);
    expect(JSON.parse(showJson.stdout)).toEqual(all[0]);

    const missing = await ferry(['files', 'show', 'no/such.txt'], { api: d.url });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toBe(`ferry: file no/such.txt not found (fid ${fidOf('no/such.txt')})\n`);
    const missingFid = await ferry(['files', 'show', '00000000-0000-5000-8000-000000000000'], { api: d.url });
    expect(missingFid).toEqual({ code: 1, stdout: '', stderr: 'ferry: file 00000000-0000-5000-8000-000000000000 not found\n' });
  });
});

describe('ferry files versions, files restore, trash', () => {
  it('list the versions kept, the trash, and restore a file by path or fid, with the exit codes of each refusal', async () => {
    const d = await boot([{ match: { path: '/' }, sync: ['A', 'B'] }]);
    await put('A', 'v.txt', 'one\n');
    await put('A', 'plain.txt', 'plain\n');
    await until('the copies in B', () => read('B', 'v.txt') === 'one\n' && read('B', 'plain.txt') === 'plain\n');
    await put('A', 'v.txt', 'two, longer\n');
    await until('B to keep a version of v.txt', async () => (await api(d.api, 'GET', `/files/${fidOf('v.txt')}/versions`)).body.versions.length === 1);

    // By path and by fid: ID ENTRY TIME (local date and time) SIZE REASON.
    const byPath = await ferry(['files', 'versions', 'v.txt'], { api: d.url });
    expect(byPath).toMatchObject({ code: 0, stderr: '' });
    const [header, row] = cells(byPath.stdout);
    expect(header).toEqual(['ID', 'ENTRY', 'TIME', 'SIZE', 'REASON']);
    expect(row).toEqual([expect.stringMatching(/^\d+$/), 'B', expect.stringMatching(/^\d{4}-\d\d-\d\d$/), expect.stringMatching(/^\d\d:\d\d:\d\d$/), '4', 'overwritten']);
    expect(await ferry(['files', 'versions', fidOf('v.txt')], { api: d.url })).toEqual(byPath);
    const json = await ferry(['files', 'versions', '/v.txt', '--json'], { api: d.url });
    expect(JSON.parse(json.stdout)).toEqual((await api(d.api, 'GET', `/files/${fidOf('v.txt')}/versions`)).body);
    expect(await ferry(['files', 'versions', 'plain.txt'], { api: d.url })).toEqual({ code: 0, stdout: 'no versions of plain.txt are kept\n', stderr: '' });
    expect(await ferry(['files', 'versions', 'no/such.txt'], { api: d.url })).toEqual({
      code: 1,
      stdout: '',
      stderr: `ferry: file no/such.txt not found (fid ${fidOf('no/such.txt')})\n`,
    });
    expect(await ferry(['trash'], { api: d.url })).toEqual({ code: 0, stdout: 'the trash is empty\n', stderr: '' });

    // Deleted everywhere: in the trash, its versions still found by its path.
    await fsp.rm(at('A', 'v.txt'));
    await until('v.txt in the trash', async () => (await api(d.api, 'GET', '/trash')).body.files.length === 1);
    const trash = await ferry(['trash'], { api: d.url });
    expect(trash).toMatchObject({ code: 0, stderr: '' });
    expect(cells(trash.stdout)).toEqual([
      ['FID', 'FILENAME', 'DELETED', 'VERSIONS'],
      [fidOf('v.txt'), 'v.txt', expect.stringMatching(/^\d{4}-/), expect.stringMatching(/^\d\d:/), '2'],
    ]);
    expect(JSON.parse((await ferry(['trash', '--json'], { api: d.url })).stdout)).toEqual((await api(d.api, 'GET', '/trash')).body);
    expect(JSON.parse((await ferry(['trash', '--all', '--json'], { api: d.url })).stdout)).toEqual((await api(d.api, 'GET', '/trash')).body);
    const versions = (await api(d.api, 'GET', `/files/${fidOf('v.txt')}/versions`)).body.versions as { id: number; reason: string }[];
    expect(versions.map((v) => v.reason)).toEqual(['deleted', 'overwritten']);

    // The refusals: exit 1 with the daemon's reason; bad usage exit 2.
    expect(await ferry(['files', 'restore', 'v.txt', '--version', '999999'], { api: d.url })).toEqual({
      code: 1,
      stdout: '',
      stderr: `ferry: version 999999 of file ${fidOf('v.txt')} not found\n`,
    });
    expect(await ferry(['files', 'restore', 'plain.txt'], { api: d.url })).toEqual({ code: 1, stdout: '', stderr: 'ferry: no versions of plain.txt are kept\n' });
    expect(await ferry(['files', 'restore', 'no/such.txt'], { api: d.url })).toEqual({
      code: 1,
      stdout: '',
      stderr: `ferry: file no/such.txt not found (fid ${fidOf('no/such.txt')})\n`,
    });
    expect(await ferry(['files', 'restore', 'v.txt', '--version', 'x'], { api: d.url })).toEqual({
      code: 2,
      stdout: '',
      stderr: "ferry: --version: must be a whole number 1 or more (got x)\nTry 'ferry files restore --help'.\n",
    });
    expect((await ferry(['files', 'restore'], { api: d.url })).code).toBe(2);
    expect((await ferry(['trash', '--limit', '0'], { api: d.url })).code).toBe(2);
    // The global --version still prints the version.
    expect(await ferry(['--version'])).toEqual({ code: 0, stdout: `ferry ${version}\n`, stderr: '' });
    expect((await ferry(['entries', 'stop', 'B'], { api: d.url })).code).toBe(0);
    expect(await ferry(['files', 'restore', 'v.txt'], { api: d.url })).toEqual({ code: 1, stdout: '', stderr: 'ferry: entry B is not running\n' });
    expect((await ferry(['entries', 'start', 'B'], { api: d.url })).code).toBe(0);

    // The newest by default: the content as deleted, back in B and in A.
    const restored = await ferry(['files', 'restore', 'v.txt'], { api: d.url });
    expect(restored).toEqual({ code: 0, stdout: `restored v.txt from version ${versions[0]!.id} in B; it syncs to every owner\n`, stderr: '' });
    expect(read('B', 'v.txt')).toBe('two, longer\n');
    await until('v.txt back in A', () => read('A', 'v.txt') === 'two, longer\n');
    expect(await ferry(['trash'], { api: d.url })).toEqual({ code: 0, stdout: 'the trash is empty\n', stderr: '' });
    // An older one by its id, by fid, --json: the API's answer.
    const older = await ferry(['files', 'restore', fidOf('v.txt'), '--version', String(versions[1]!.id), '--json'], { api: d.url });
    expect(older.code).toBe(0);
    expect(JSON.parse(older.stdout)).toEqual({ status: 'ok', fid: fidOf('v.txt'), filename: 'v.txt', entry: 'B', id: versions[1]!.id, time: expect.any(Number) });
    await until('the first content back in A and B', () => read('A', 'v.txt') === 'one\n' && read('B', 'v.txt') === 'one\n');
  });
});

describe('ferry: options and help in its own words', () => {
  it('every option fault is said by ferry, never by node\'s parser: exit 2, one line, then the help to read', async () => {
    const nowhere = 'http://127.0.0.1:9';
    const cases: [string[], string][] = [
      [['files', '--limit', '-1'], "ferry: --limit: must be a whole number from 1 to 1000 (got -1)\nTry 'ferry files --help'.\n"],
      [['files', '--limit=1001'], "ferry: --limit: must be a whole number from 1 to 1000 (got 1001)\nTry 'ferry files --help'.\n"],
      [['files', '--offset', '-5'], "ferry: --offset: must be a whole number 0 or more (got -5)\nTry 'ferry files --help'.\n"],
      [['files', '--offset', '1e3'], "ferry: --offset: must be a whole number 0 or more (got 1e3)\nTry 'ferry files --help'.\n"],
      [['files', '--search', ''], "ferry: --search: must not be empty\nTry 'ferry files --help'.\n"],
      [['files', '--pending', 'a b'], "ferry: --pending: must be an entry name: letters, digits, _ . - (got a b)\nTry 'ferry files --help'.\n"],
      [['files', '--limit'], "ferry: --limit needs a value: --limit N\nTry 'ferry --help'.\n"],
      [['entries', 'wait', 'A', '--state', '--synced'], "ferry: --state needs a value: --state STATE\nTry 'ferry --help'.\n"],
      [['entries', '--json=yes'], "ferry: --json takes no value (got --json=yes)\nTry 'ferry --help'.\n"],
      [['files', '--limt', '5'], "ferry: unknown option --limt (did you mean --limit?)\nTry 'ferry --help'.\n"],
      [['entries', '-x'], "ferry: unknown option -x\nTry 'ferry --help'.\n"],
      [['files', '--failing', '--state', 'active'], "ferry: ferry files takes no --state\nTry 'ferry files --help'.\n"],
      [['machines', '--format', 'xml'], "ferry: --format: must be json or mermaid (got xml)\nTry 'ferry machines --help'.\n"],
      [['start', '--setup', 's.json', '--port', '70000'], "ferry: --port: must be a whole number from 0 to 65535 (got 70000)\nTry 'ferry start --help'.\n"],
      [['start', '--setup', 's.json', '--log-level', 'loud'], "ferry: --log-level: must be trace, debug, info, warn, error, fatal or silent (got loud)\nTry 'ferry start --help'.\n"],
      [['entries', 'frobnicate', '--help'], "ferry: unknown command: entries frobnicate\nTry 'ferry entries --help'.\n"],
    ];
    for (const [args, stderr] of cases) {
      const run = await ferry(args, { api: nowhere });
      expect(run, args.join(' ')).toEqual({ code: 2, stdout: '', stderr });
      for (const nodeWords of ['ERR_PARSE_ARGS', 'ambiguous', 'Did you forget', 'To specify an option argument', '    at ']) {
        expect(run.stderr, args.join(' ')).not.toContain(nodeWords);
      }
    }
    // A value that starts with a dash is a value (`--` ends the options).
    const dashed = await ferry(['files', 'show', '--', '-odd-name'], { api: nowhere });
    expect(dashed.code).toBe(3);
  });

  it('--help on each group lists its commands, one line each, and the group\'s own options', async () => {
    const groups: Record<string, string[]> = {
      entries: ['ferry entries ', 'ferry entries show NAME', 'ferry entries status NAME', 'ferry entries stats NAME', 'ferry entries start NAME…',
        'ferry entries stop NAME…', 'ferry entries restart NAME…', 'ferry entries rescan NAME…', 'ferry entries wait NAME'],
      rules: ['ferry rules ', 'ferry rules set FILE|-', 'ferry rules reload', 'ferry rules diff'],
      files: ['ferry files ', 'ferry files show FID|PATH', 'ferry files versions FID|PATH', 'ferry files restore FID|PATH'],
    };
    for (const [group, commands] of Object.entries(groups)) {
      const run = await ferry([group, '--help']);
      expect(run.code, group).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout.startsWith(`Usage: ferry ${group} [COMMAND] [ARGS]\n`)).toBe(true);
      const section = /\nCommands:\n((?: {2}.+\n)+)/.exec(run.stdout);
      expect(section, group).not.toBeNull();
      const lines = section![1]!.trimEnd().split('\n');
      // Each command on one line, with a word on what it does.
      expect(lines).toHaveLength(commands.length);
      commands.forEach((c, i) => expect(lines[i], group).toMatch(new RegExp(`^ {2}${c.replace(/[|…]/g, '\\$&').trimEnd()}\\s{2,}\\S.+$`)));
      expect(run.stdout).toContain(`"ferry ${group} COMMAND --help" tells more of one command.`);
      for (const line of EXIT_CODE_LINES) expect(run.stdout).toMatch(line);
    }
    const files = await ferry(['files', '--help']);
    for (const option of ['--offset N', '--limit N', '--all', '--pending NAME', '--failing', '--search TEXT']) {
      expect(files.stdout).toMatch(new RegExp(`^ {2}${option}\\s{2,}\\S`, 'm'));
    }
    // One command of a group: its own help, not the group's.
    const show = await ferry(['files', 'show', '--help']);
    expect(show.stdout.startsWith('Usage: ferry files show FID|PATH\n\n')).toBe(true);
    expect(show.stdout).not.toContain('Commands:');
  });

  it('client commands never load the daemon: no SQLite, Fastify, XState or pino; start does', async () => {
    const hooks = await tempDir('ferry-hooks-');
    try {
      const loaded = path.join(hooks, 'loaded.txt');
      await fsp.writeFile(
        path.join(hooks, 'hooks.mjs'),
        "import fs from 'node:fs';\nexport async function load(url, context, next) {\n  fs.appendFileSync(process.env.FERRY_LOADED, url + '\\n');\n  return next(url, context);\n}\n",
      );
      await fsp.writeFile(path.join(hooks, 'register.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
      const run = (args: string[]) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ['--import', path.join(hooks, 'register.mjs'), CLI, ...args], {
            env: { ...process.env, FERRY_LOADED: loaded },
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let stderr = '';
          child.stderr.on('data', (d) => (stderr += d));
          child.on('close', (code) => resolve({ code, stderr }));
        });
      const heavy = /\/(daemon|cli-start)\.js$|node_modules\/(fastify|better-sqlite3|xstate|pino|chokidar|undici)\//m;

      const d = await boot();
      for (const args of [['entries'], ['entries', 'status', 'A'], ['files', '--pending', 'B'], ['rules'], ['entries', 'stop', 'B']]) {
        await fsp.rm(loaded, { force: true });
        expect((await run(['--api', d.url, ...args])).code, args.join(' ')).toBe(0);
        const urls = await fsp.readFile(loaded, 'utf8');
        expect(urls).toContain('/dist/src/cli.js\n');
        expect(urls, args.join(' ')).not.toMatch(heavy);
      }
      // The hook sees them when they are loaded: start does load the daemon, from its bundle
      // (scripts/build-daemon.mjs), not from tsc's modules.
      await fsp.rm(loaded, { force: true });
      const start = await run(['start', '--setup', path.join(hooks, 'no-such-setup.json')]);
      expect(start.code).toBe(2);
      const startUrls = await fsp.readFile(loaded, 'utf8');
      expect(startUrls).toMatch(/\/dist\/daemon\/cli-start\.js$/m);
      expect(startUrls).not.toMatch(/\/dist\/src\/daemon\.js$/m);
    } finally {
      await fsp.rm(hooks, { recursive: true, force: true });
    }
  });
});

describe('ferry start: the workers forked ahead', () => {
  it("forks its entries' workers before the daemon's code loads, and the entries run on them; a refused start leaves none", async () => {
    const dir = await tempDir('ferry-spares-');
    const busy = http.createServer();
    try {
      // A loader hook notes, when the daemon's bundle is loaded, the processes it already forked.
      const noted = path.join(dir, 'children.txt');
      await fsp.writeFile(
        path.join(dir, 'hooks.mjs'),
        "import fs from 'node:fs';\n" +
          'export async function load(url, context, next) {\n' +
          "  if (url.endsWith('/dist/daemon/cli-start.js')) {\n" +
          "    const ppid = (n) => { try { const s = fs.readFileSync('/proc/' + n + '/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]); } catch { return 0; } };\n" +
          "    const pids = fs.readdirSync('/proc').filter((n) => /^\\d+$/.test(n) && ppid(n) === process.pid);\n" +
          "    fs.writeFileSync(process.env.FERRY_CHILDREN, pids.join(' '));\n" +
          '  }\n' +
          '  return next(url, context);\n' +
          '}\n',
      );
      await fsp.writeFile(path.join(dir, 'register.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
      const setup = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: SPEC_RULES });
      const start = (port: number) =>
        spawn(process.execPath, ['--import', path.join(dir, 'register.mjs'), CLI, 'start', '--setup', setup, '--port', String(port)], {
          env: { ...process.env, FERRY_CHILDREN: noted },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };

      const daemon = start(0);
      let out = '';
      daemon.stdout!.on('data', (d) => (out += d));
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      try {
        await until('both entries ready', () => (out.match(/"msg":"worker ready"/g) ?? []).length === 2, 20_000);
        const ahead = (await fsp.readFile(noted, 'utf8')).split(' ').map(Number).sort();
        expect(ahead).toHaveLength(2);
        const ready = [...out.matchAll(/"pid":(\d+),"msg":"worker ready"/g)].map((m) => Number(m[1])).sort();
        expect(ready).toEqual(ahead);
      } finally {
        daemon.kill('SIGTERM');
        await exited;
      }

      // A busy port: exit 2, and the workers forked ahead are gone.
      await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
      await fsp.rm(noted, { force: true });
      const refused = start((busy.address() as AddressInfo).port);
      const code = await new Promise((resolve) => refused.once('exit', resolve));
      expect(code).toBe(2);
      const spares = (await fsp.readFile(noted, 'utf8')).split(' ').map(Number);
      expect(spares).toHaveLength(2);
      await until('the spare workers gone', () => spares.every((pid) => !alive(pid)), 10_000);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ferry files: --pending, --failing, --search', () => {
  it('map to the API\'s filters, combine, page, and show the reason of each failing file', async () => {
    // B's root holds a file named "backedup" where A has a folder "backedup/": B cannot write
    // backedup/r.pdf (mkdir fails) and A cannot write the file "backedup". Both keep failing.
    await put('A', 'backedup/r.pdf', '%PDF-1.7 r\n');
    await put('B', 'backedup', 'plain\n');
    await put('A', 'Notes_2026%.txt', 'n\n');
    await put('A', 'notes-2026.txt', 'n2\n');
    const d = await boot();
    const all = await settled(d, {
      'Notes_2026%.txt': { owners: ['A'], uptodate: ['A'] },
      backedup: { owners: ['A', 'B'], uptodate: ['B'] },
      'backedup/r.pdf': { owners: ['A', 'B'], uptodate: ['A'] },
      'notes-2026.txt': { owners: ['A'], uptodate: ['A'] },
    });
    const byName = Object.fromEntries(all.map((f) => [f.filename, f]));
    await until('both copies to have failed once', async () => (await api(d.api, 'GET', '/files?failing=true')).body.files.length === 2);

    const pendingB = await ferry(['files', '--pending', 'B'], { api: d.url });
    expect(pendingB).toMatchObject({ code: 0, stderr: '' });
    expect(cells(pendingB.stdout)).toEqual([
      ['FILENAME', 'SIZE', 'OWNERS', 'UPTODATE'],
      ['backedup/r.pdf', '11', 'A,B', 'A'],
    ]);
    expect(JSON.parse((await ferry(['files', '--pending', 'A', '--json'], { api: d.url })).stdout)).toEqual({ files: [byName.backedup] });

    const failing = await ferry(['files', '--failing'], { api: d.url });
    expect(failing).toMatchObject({ code: 0, stderr: '' });
    const rows = failing.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^FILENAME\s+SIZE\s+OWNERS\s+UPTODATE\s+REASON$/);
    expect(rows[1]).toMatch(/^backedup\s+6\s+A,B\s+B\s+\S.*$/);
    expect(rows[2]).toMatch(/^backedup\/r\.pdf\s+11\s+A,B\s+A\s+.*(EEXIST|ENOTDIR).*$/);
    expect(rows).toHaveLength(3);
    const failingJson = JSON.parse((await ferry(['files', '--failing', '--json'], { api: d.url })).stdout);
    expect(failingJson.files.map((f: { filename: string }) => f.filename)).toEqual(['backedup', 'backedup/r.pdf']);
    for (const f of failingJson.files) expect(f.reason).toEqual(expect.any(String));
    // The reason is the job's error, as the entry's status says it.
    const statusB = (await api(d.api, 'GET', '/entries/B/status')).body.reason as string;
    expect(statusB).toContain(failingJson.files[1].reason);

    // Combined: failing and pending in B; failing and named like "r.pdf".
    const both = JSON.parse((await ferry(['files', '--failing', '--pending', 'B', '--json'], { api: d.url })).stdout);
    expect(both.files.map((f: { filename: string }) => f.filename)).toEqual(['backedup/r.pdf']);
    const searched = JSON.parse((await ferry(['files', '--failing', '--search', 'R.PDF', '--json'], { api: d.url })).stdout);
    expect(searched.files.map((f: { filename: string }) => f.filename)).toEqual(['backedup/r.pdf']);

    // --search: any case; % and _ are plain characters, not wildcards.
    const notes = await ferry(['files', '--search', 'NOTES'], { api: d.url });
    expect(cells(notes.stdout).map((r) => r[0])).toEqual(['FILENAME', 'Notes_2026%.txt', 'notes-2026.txt']);
    expect(cells((await ferry(['files', '--search', '_2026%'], { api: d.url })).stdout).map((r) => r[0])).toEqual(['FILENAME', 'Notes_2026%.txt']);
    expect(cells((await ferry(['files', '--search', 's%'], { api: d.url })).stdout)).toEqual([['FILENAME', 'SIZE', 'OWNERS', 'UPTODATE']]);
    // Paged, in filename order; --all with a filter walks every page of it.
    expect(cells((await ferry(['files', '--search', 'notes', '--offset', '1', '--limit', '1'], { api: d.url })).stdout).map((r) => r[0])).toEqual([
      'FILENAME',
      'notes-2026.txt',
    ]);
    expect(JSON.parse((await ferry(['files', '--all', '--search', 'e', '--json'], { api: d.url })).stdout)).toEqual({ files: all });

    // An unknown entry is the daemon's 404: exit 1 with its reason.
    expect(await ferry(['files', '--pending', 'C'], { api: d.url })).toEqual({ code: 1, stdout: '', stderr: 'ferry: entry C not found\n' });
  });
});
