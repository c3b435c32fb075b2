import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { alive, api, running, CLI, startDaemon, tempDir, until, writeSetup, type RunningDaemon, daemonHarness } from './helpers.js';

/** Supervision end to end: real daemons, real workers, real signals. */

const harness = daemonHarness('ferry-sup-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const ALL = (...entries: string[]) => [{ match: { path: '/' }, sync: entries }];

async function setup(entries: string[], rules: unknown[] = ALL(...entries)): Promise<string> {
  return writeSetup(dir, { entries: Object.fromEntries(entries.map((e) => [e, e])), rules });
}

async function daemon(setupFile: string): Promise<RunningDaemon> {
  const d = await startDaemon(setupFile);
  daemons.push(d);
  return d;
}

const at = (entry: string, rel: string) => path.join(dir, entry, rel);

async function put(entry: string, rel: string, content: string): Promise<void> {
  await fsp.mkdir(path.dirname(at(entry, rel)), { recursive: true });
  await fsp.writeFile(at(entry, rel), content);
}

const holds = (entry: string, rel: string, content: string) => () => {
  try {
    return fs.readFileSync(at(entry, rel), 'utf8') === content;
  } catch {
    return false;
  }
};

async function status(d: RunningDaemon, entry: string): Promise<string> {
  const res = await api(d.api, 'GET', `/entries/${entry}/status`);
  expect(res.status).toBe(200);
  return res.body.status;
}

async function workerPid(d: RunningDaemon, entry: string): Promise<number> {
  const res = await api(d.api, 'GET', `/entries/${entry}/stats`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.info.pid).toEqual(expect.any(Number));
  return res.body.info.pid;
}


describe('a worker that dies', () => {
  it('is restarted by itself with a new pid, and syncing goes on', async () => {
    const d = await daemon(await setup(['A', 'B']));
    await put('A', 'before.txt', 'before the crash');
    await until('before.txt in B', holds('B', 'before.txt', 'before the crash'));
    const old = await workerPid(d, 'A');

    process.kill(old, 'SIGKILL');
    const seen = new Set<string>();
    const pid = await until('A active again with a new worker', async () => {
      const s = await status(d, 'A');
      seen.add(s);
      if (s !== 'active') return null;
      const res = await api(d.api, 'GET', '/entries/A/stats');
      return res.status === 200 && res.body.info.pid !== old ? (res.body.info.pid as number) : null;
    }) as number;
    expect([...seen].every((s) => s === 'restarting' || s === 'active'), [...seen].join()).toBe(true);
    expect(pid).not.toBe(old);
    expect(running(pid)).toBe(true);
    await until('the old worker gone', () => !running(old));

    await put('A', 'after.txt', 'after the crash');
    await until('after.txt in B', holds('B', 'after.txt', 'after the crash'));
    await put('B', 'back.txt', 'from B to the restarted A');
    await until('back.txt in A', holds('A', 'back.txt', 'from B to the restarted A'));
    expect(d.logs.some((l) => l.entry === 'A' && l.msg === 'worker exited unexpectedly')).toBe(true);
  });

  it('is restarted again after a second crash', async () => {
    const d = await daemon(await setup(['A', 'B']));
    let pid = await workerPid(d, 'B');
    for (let round = 0; round < 2; round++) {
      process.kill(pid, 'SIGKILL');
      const previous = pid;
      pid = await until(`B back after crash ${round + 1}`, async () => {
        const res = await api(d.api, 'GET', '/entries/B/stats');
        return res.status === 200 && res.body.info.pid !== previous ? (res.body.info.pid as number) : null;
      }) as number;
    }
    await put('A', 'x.txt', 'still syncing');
    await until('x.txt in B', holds('B', 'x.txt', 'still syncing'));
  });

  it('a worker killed mid-transfer leaves no partial file, and the copy is done again after its restart', async () => {
    const d = await daemon(await setup(['A', 'B']));
    const pid = await workerPid(d, 'B');
    // 256 MiB, long enough a copy to be caught in the middle; staged outside the root.
    const chunk = randomBytes(1024 * 1024);
    const hash = createHash('sha256');
    const staging = await fsp.open(path.join(dir, 'staging.bin'), 'w');
    for (let i = 0; i < 256; i++) {
      chunk.writeUInt32BE(i, 0);
      hash.update(chunk);
      await staging.write(chunk);
    }
    await staging.close();
    const expected = hash.digest('hex');
    await fsp.rename(path.join(dir, 'staging.bin'), at('A', 'big.bin'));

    const temporary = await until(
      'the transfer under way in B',
      () => fs.readdirSync(path.join(dir, 'B')).find((n) => /^\.ferry-(tmp|part)-/.test(n)) ?? (fs.existsSync(at('B', 'big.bin')) ? 'done' : null),
      15_000,
      1,
    );
    expect(temporary, 'the copy finished before it could be interrupted').not.toBe('done');
    process.kill(pid, 'SIGKILL');
    expect(fs.existsSync(at('B', 'big.bin'))).toBe(false);

    await until('the whole file in B', () => fs.statSync(at('B', 'big.bin'), { throwIfNoEntry: false })?.size === 256 * 1024 * 1024, 60_000);
    expect(createHash('sha256').update(fs.readFileSync(at('B', 'big.bin'))).digest('hex')).toBe(expected);
    await until('no temporary left in B', () => !fs.readdirSync(path.join(dir, 'B')).some((n) => /^\.ferry-(tmp|part)-/.test(n)));
    expect(await status(d, 'B')).toBe('active');
  });
});

describe('stopping the daemon', () => {
  it('SIGKILL of the daemon leaves no worker behind', async () => {
    const d = await daemon(await setup(['A', 'B']));
    const pids = [await workerPid(d, 'A'), await workerPid(d, 'B')];
    expect(pids.every(running)).toBe(true);
    d.process.kill('SIGKILL');
    await until('every worker gone', () => pids.every((pid) => !running(pid)));
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} stops the daemon with exit code 0 and its workers are gone`, async () => {
      const d = await daemon(await setup(['A', 'B']));
      const pids = [await workerPid(d, 'A'), await workerPid(d, 'B')];
      expect(await d.stop(signal)).toBe(0);
      await until('every worker gone', () => pids.every((pid) => !running(pid)));
      expect(d.stderr()).toBe('');
      expect(d.logs.some((l) => l.msg === 'ferry stopped')).toBe(true);
    });
  }
});

/** Runs `ferry start` on a setup that must be refused: its exit code and stderr. */
function refused(setupFile: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'start', '--setup', setupFile, '--port', '0'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => (stdout += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferry start did not exit on an invalid setup; stderr: ${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

describe('an invalid setup', () => {
  const cases: [string, () => Promise<string>, RegExp][] = [
    ['bad JSON', async () => write('{"name": "x", "entries": {'), /invalid JSON/i],
    [
      'an unknown driver',
      async () => write({ entries: { A: { driver: 'ftp_maybe', options: { root: 'A' } } } }),
      /entries\.A\.driver.*unknown driver.*ftp_maybe/,
    ],
    [
      'a bad entry name',
      async () => write({ entries: { 'a/b': { driver: 'local_storage', options: { root: 'A' } } } }),
      /entries\.a\/b.*bad entry name/,
    ],
    [
      'a rule naming an unknown entry',
      async () =>
        write({
          entries: { A: { driver: 'local_storage', options: { root: 'A' } } },
          rules: [{ match: { path: '/' }, sync: ['A', 'Nope'] }],
        }),
      /rules\[0\]\.sync\[1\].*unknown entry.*Nope/,
    ],
    [
      'a missing root option',
      async () => write({ entries: { A: { driver: 'local_storage', options: {} } } }),
      /entries\.A\.options\.root.*missing/,
    ],
    ['a missing setup file', async () => path.join(dir, 'no-such-setup.json'), /no-such-setup\.json.*not found/],
  ];

  async function write(content: unknown): Promise<string> {
    const file = path.join(dir, 'setup.json');
    await fsp.writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  }

  it.each(cases)('%s: exits 2 with one clear line on stderr', async (_what, make, pattern) => {
    const { code, stderr, stdout } = await refused(await make());
    expect(code).toBe(2);
    const lines = stderr.trimEnd().split('\n');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^ferry: /);
    expect(lines[0]).toMatch(pattern);
    expect(stderr).not.toMatch(/\n\s+at |Error:|node:internal/);
    expect(stdout).not.toMatch(/ferry is running/);
  });
});

describe('roots that cannot be used', () => {
  it('an entry whose root does not exist stays stopped; the others sync', async () => {
    const file = await setup(['A', 'B', 'C']);
    await fsp.rm(path.join(dir, 'B'), { recursive: true });
    const d = await daemon(file);

    expect(await status(d, 'B')).toBe('stopped');
    const start = await api(d.api, 'PUT', '/entries/B/start');
    expect(start.status).toBe(409);
    expect(start.body.status).toBe('error');
    expect(start.body.reason).toMatch(/root/);
    expect(start.body.reason).toMatch(/does not exist/);
    expect(await status(d, 'B')).toBe('stopped');

    await put('A', 'doc.txt', 'A to C while B is missing');
    await until('doc.txt in C', holds('C', 'doc.txt', 'A to C while B is missing'));
    expect(fs.existsSync(path.join(dir, 'B'))).toBe(false);
    expect(await status(d, 'A')).toBe('active');
  });

  it('an entry whose root is empty while the store says it held files refuses to start; nothing is deleted', async () => {
    const file = await setup(['A', 'B', 'C']);
    const first = await daemon(file);
    const files = { 'one.txt': 'one', 'deep/two.txt': 'two', 'three.bin': 'three' };
    for (const [rel, content] of Object.entries(files)) await put('A', rel, content);
    await until('every file in B and C', () =>
      Object.entries(files).every(([rel, content]) => holds('B', rel, content)() && holds('C', rel, content)()),
    );
    await until('B up to date in the listing', async () => {
      const res = await api(first.api, 'GET', '/files');
      return res.body.files.length === 3 && res.body.files.every((f: { uptodate: string[] }) => f.uptodate.includes('B'));
    });
    expect(await first.stop()).toBe(0);

    // An unmounted disk: the folder is there, empty.
    for (const name of await fsp.readdir(path.join(dir, 'B'))) await fsp.rm(path.join(dir, 'B', name), { recursive: true });
    const second = await daemon(file);
    expect(await status(second, 'B')).toBe('stopped');
    const start = await api(second.api, 'PUT', '/entries/B/start');
    expect(start.status).toBe(409);
    expect(start.body.reason).toMatch(/empty/);

    // Anything B's start had set going would be done before this later file reaches C.
    await put('A', 'later.txt', 'later');
    await until('later.txt in C', holds('C', 'later.txt', 'later'));
    for (const [rel, content] of Object.entries(files)) {
      expect(holds('A', rel, content)(), `A/${rel}`).toBe(true);
      expect(holds('C', rel, content)(), `C/${rel}`).toBe(true);
    }
    const listing = await api(second.api, 'GET', '/files');
    expect(listing.body.files.map((f: { filename: string }) => f.filename).sort()).toEqual(
      ['deep/two.txt', 'later.txt', 'one.txt', 'three.bin'],
    );
    expect(await fsp.readdir(path.join(dir, 'B'))).toEqual([]);
  });
});
