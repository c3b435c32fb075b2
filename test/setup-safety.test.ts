import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLI, startDaemon, tempDir, until, writeSetup, type RunningDaemon } from './helpers.js';

/**
 * Start-up safety (issue 9), on real folders with the built `ferry start`: setups whose roots
 * overlap, typos in the setup file, a second daemon on the same store or port. Each refused start
 * exits 2 with one line on stderr and leaves nothing behind.
 */

let dir: string;
let daemons: RunningDaemon[];

beforeEach(async () => {
  // Real path: the messages show resolved folders.
  dir = fs.realpathSync(await tempDir('ferry-safety-'));
  daemons = [];
});

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') {
    for (const d of daemons) console.error(d.logs.map((l) => JSON.stringify(l)).join('\n') + d.stderr());
  }
  for (const d of daemons) await d.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

interface Refusal {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The JSON log lines on stdout. */
  logs: Record<string, unknown>[];
}

/** `ferry start --setup FILE` run in `cwd` (the test's folder), expected to exit on its own. */
function start(args: string[], cwd = dir): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'start', '--log-level', 'debug', ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FERRY_TOKEN: undefined },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferry start did not exit; stdout: ${stdout}; stderr: ${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const logs = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, stdout, stderr, logs });
    });
  });
}

/** Every path under `root` (folders with a trailing slash; links as links), sorted. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = path.join(rel, e.name);
      if (e.isDirectory()) {
        out.push(`${p}/`);
        walk(p);
      } else out.push(e.isSymbolicLink() ? `${p} -> ${fs.readlinkSync(path.join(root, p))}` : p);
    }
  };
  walk('');
  return out.sort();
}

/** Exit 2, exactly `line` on stderr, no stack, no worker, and the folder as it was. */
async function expectRefused(args: string[], line: string | RegExp, before = tree(dir)): Promise<Refusal> {
  const res = await start(args);
  expect(res.code, res.stderr).toBe(2);
  const lines = res.stderr.split('\n');
  expect(lines, res.stderr).toHaveLength(2); // one line and its newline
  expect(lines[1]).toBe('');
  if (typeof line === 'string') expect(lines[0]).toBe(line);
  else expect(lines[0]).toMatch(line);
  expect(res.stderr).not.toMatch(/\n\s+at |node:internal/);
  expect(res.stdout).not.toMatch(/ferry is running|worker ready/);
  expect(tree(dir), 'nothing created, nothing removed').toEqual(before);
  return res;
}

const local = (root: string, more: Record<string, unknown> = {}) => ({ driver: 'local_storage', options: { root, ...more } });

async function writeJson(content: unknown, name = 'setup.json'): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

const ALL_TO = (...entries: string[]) => [{ match: { path: '/' }, sync: entries }];

describe('roots that overlap, or hold the data dir: exit 2, one line naming both, nothing created', () => {
  const OVERLAP = 'roots may not overlap';
  const cases: [string, () => Promise<string[]>, (d: string) => string][] = [
    [
      'a root nested in another',
      async () => {
        await fsp.mkdir(path.join(dir, 'A/inner'), { recursive: true });
        await writeJson({ entries: { A: local('A'), I: local('A/inner') } });
        return [];
      },
      (d) => `entries.I.options.root (${d}/A/inner) lies inside entries.A.options.root (${d}/A); ${OVERLAP}`,
    ],
    [
      'equal roots, one with a trailing slash',
      async () => {
        await fsp.mkdir(path.join(dir, 'A'));
        await writeJson({ entries: { A: local('A'), B: local('A/') } });
        return [];
      },
      (d) => `entries.B.options.root (${d}/A) is the same folder as entries.A.options.root (${d}/A); ${OVERLAP}`,
    ],
    [
      'a root that is the parent of an earlier one',
      async () => {
        await fsp.mkdir(path.join(dir, 'top/A'), { recursive: true });
        await writeJson({ entries: { A: local('top/A'), P: local('top') } });
        return [];
      },
      (d) => `entries.A.options.root (${d}/top/A) lies inside entries.P.options.root (${d}/top); ${OVERLAP}`,
    ],
    [
      "a symbolic link to another entry's root",
      async () => {
        await fsp.mkdir(path.join(dir, 'A'));
        await fsp.symlink('A', path.join(dir, 'L'));
        await writeJson({ entries: { A: local('A'), L: local('L') } });
        return [];
      },
      (d) => `entries.L.options.root (${d}/L, which resolves to ${d}/A) is the same folder as entries.A.options.root (${d}/A); ${OVERLAP}`,
    ],
    [
      'a missing root under a link into another root',
      async () => {
        await fsp.mkdir(path.join(dir, 'A'));
        await fsp.symlink('A', path.join(dir, 'L'));
        await writeJson({ entries: { A: local('A'), M: local('L/not/yet') } });
        return [];
      },
      (d) =>
        `entries.M.options.root (${d}/L/not/yet, which resolves to ${d}/A/not/yet) lies inside entries.A.options.root (${d}/A); ${OVERLAP}`,
    ],
    [
      'a root that is a file',
      async () => {
        await fsp.mkdir(path.join(dir, 'A'));
        await fsp.writeFile(path.join(dir, 'file'), 'not a folder');
        await writeJson({ entries: { A: local('A'), F: local('file') } });
        return [];
      },
      (d) => `entries.F.options.root: ${d}/file is not a folder`,
    ],
    [
      'a --data-dir inside a root',
      async () => {
        await fsp.mkdir(path.join(dir, 'A'));
        await fsp.mkdir(path.join(dir, 'B'));
        await writeJson({ entries: { A: local('A'), B: local('B') } });
        return ['--data-dir', 'B/store'];
      },
      (d) =>
        `the data dir (${d}/B/store) lies inside entries.B.options.root (${d}/B); ` +
        'its store would be synced as files: give a --data-dir outside every root',
    ],
    [
      'the default data dir inside a root (the setup file in a root)',
      async () => {
        await writeJson({ entries: { HERE: local('.') } });
        return [];
      },
      (d) =>
        `the data dir (${d}/.ferry) lies inside entries.HERE.options.root (${d}); ` +
        'its store would be synced as files: give a --data-dir outside every root',
    ],
    [
      'a --data-dir that is a root',
      async () => {
        await fsp.mkdir(path.join(dir, 'A'));
        await writeJson({ entries: { A: local('A') } });
        return ['--data-dir', 'A'];
      },
      (d) =>
        `the data dir (${d}/A) is the same folder as entries.A.options.root (${d}/A); ` +
        'its store would be synced as files: give a --data-dir outside every root',
    ],
  ];

  it.each(cases)('%s', async (_what, make, message) => {
    const extra = await make();
    await expectRefused(['--setup', 'setup.json', '--port', '0', ...extra], `ferry: setup setup.json: ${message(dir)}`);
    expect(fs.existsSync(path.join(dir, '.ferry')), 'no data dir').toBe(false);
  });

  it('roots that only share a prefix (A and AB) do not overlap: the daemon runs and syncs', async () => {
    const file = await writeSetup(dir, { entries: { A: 'A', AB: 'AB' }, rules: ALL_TO('A', 'AB') });
    const d = await startDaemon(file);
    daemons.push(d);
    await fsp.writeFile(path.join(dir, 'A/one.txt'), 'one');
    await until('one.txt in AB', () => fs.existsSync(path.join(dir, 'AB/one.txt')));
  });

  it('a missing root still only stops its entry; the daemon runs', async () => {
    const file = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: ALL_TO('A', 'B') });
    await fsp.rm(path.join(dir, 'B'), { recursive: true });
    const d = await startDaemon(file);
    daemons.push(d);
    const res = await fetch(`${d.api}/entries/B/status`);
    expect(((await res.json()) as { status: string }).status).toBe('stopped');
  });
});

describe('typos in the setup file: exit 2, one line naming the key and the close known one', () => {
  const cases: [string, unknown, string][] = [
    ['"rot" in options', { entries: { A: { driver: 'local_storage', options: { rot: 'A' } } } }, 'entries.A.options.rot: unknown option (did you mean "root"?)'],
    ['"rulez" at the top level', { entries: { A: local('A') }, rulez: ALL_TO('A') }, 'rulez: unknown key (did you mean "rules"?)'],
    ['"drivr" in an entry', { entries: { A: { drivr: 'local_storage', options: { root: 'A' } } } }, 'entries.A.drivr: unknown key (did you mean "driver"?)'],
    ['an unknown key in an entry, nothing close', { entries: { A: { ...local('A'), enabled: true } } }, 'entries.A.enabled: unknown key'],
    [
      '"synk" in a rule',
      { entries: { A: local('A'), B: local('B') }, rules: [{ match: { path: '/' }, sync: ['A'] }, { match: { path: '/' }, synk: ['B'] }] },
      'rules[1].synk: unknown field (did you mean "sync"?)',
    ],
    [
      '"mimes" in a rule\'s match',
      { entries: { A: local('A') }, rules: [{ match: { path: '/', mimes: ['image/*'] }, sync: ['A'] }] },
      'rules[0].match.mimes: unknown field (did you mean "mime"?)',
    ],
    [
      'a settle_ms that is not a whole number',
      { entries: { A: local('A', { settle_ms: 2.5 }) } },
      'entries.A.options.settle_ms: must be a whole number of milliseconds, 0 or more',
    ],
  ];

  it.each(cases)('%s', async (_what, content, message) => {
    await fsp.mkdir(path.join(dir, 'A'));
    await fsp.mkdir(path.join(dir, 'B'));
    await writeJson(content);
    await expectRefused(['--setup', 'setup.json', '--port', '0'], `ferry: setup setup.json: ${message}`);
  });

  it('invalid JSON: the line and the column', async () => {
    await fsp.mkdir(path.join(dir, 'A'));
    await writeJson('{\n  "entries": {\n    "A": {"driver": "local_storage", "options": {"root": "A"}},\n  }\n}\n');
    await expectRefused(
      ['--setup', 'setup.json', '--port', '0'],
      // The comma before "}" on line 3 is the fault V8 sees at line 4, column 3.
      /^ferry: setup setup\.json: invalid JSON at line 4, column 3: /,
    );
    // No position in V8's message for an unexpected token: Ferry finds it.
    const third = '    "A": {"driver": "local_storage", "options": {"root": A}}';
    await writeJson(`{\n  "entries": {\n${third}\n  }\n}\n`);
    await expectRefused(
      ['--setup', 'setup.json', '--port', '0'],
      `ferry: setup setup.json: invalid JSON at line 3, column ${third.indexOf('A}') + 1}: Unexpected token 'A'`,
    );
  });
});

describe('one daemon per data dir and per port', () => {
  it('a second daemon on the same data dir (another port) exits 2 naming the first; the first keeps syncing', async () => {
    const file = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: ALL_TO('A', 'B') });
    const first = await startDaemon(file);
    daemons.push(first);
    const lock = path.join(dir, '.ferry/lock');
    expect(fs.readFileSync(lock, 'utf8').split('\n')[0]).toBe(String(first.process.pid));

    const second = await expectRefused(
      ['--setup', 'setup.json', '--port', '0'],
      `ferry: another ferry (pid ${first.process.pid}) is already running on ${dir}/.ferry`,
    );
    expect(second.logs.filter((l) => /worker/.test(String(l.msg)))).toEqual([]);
    // Another way to name the same data dir is the same data dir.
    await expectRefused(
      ['--setup', path.join(dir, 'setup.json'), '--port', '0', '--data-dir', `${dir}/A/../.ferry/`],
      `ferry: another ferry (pid ${first.process.pid}) is already running on ${dir}/.ferry`,
    );

    expect(first.process.exitCode).toBe(null);
    expect(fs.readFileSync(lock, 'utf8').split('\n')[0]).toBe(String(first.process.pid));
    await fsp.writeFile(path.join(dir, 'A/after.txt'), 'written after the second was refused');
    await until('after.txt in B', () => fs.existsSync(path.join(dir, 'B/after.txt')));
    expect(await first.stop()).toBe(0);
    expect(fs.existsSync(lock), 'a clean stop removes the lock').toBe(false);
  });

  it('a second daemon on a busy port exits 2 in one line; no worker ran, no lock or data dir is left', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: ALL_TO('A', 'B') });
      await fsp.writeFile(path.join(dir, 'A/waiting.txt'), 'would be copied if a worker ran');
      const res = await expectRefused(
        ['--setup', 'setup.json', '--port', String(port)],
        `ferry: cannot listen on 127.0.0.1:${port}: address already in use (is another ferry running?)`,
      );
      expect(res.logs.filter((l) => /worker/.test(String(l.msg)))).toEqual([]);
      for (const root of ['A', 'B']) expect(fs.existsSync(path.join(dir, root, '.ferry-entry')), `no marker in ${root}`).toBe(false);
      expect(fs.existsSync(path.join(dir, '.ferry')), 'the fresh data dir is removed').toBe(false);

      // With a store from an earlier run: it stays, the lock does not.
      const d = await startDaemon(path.join(dir, 'setup.json'));
      expect(await d.stop()).toBe(0);
      const before = tree(dir);
      expect(before).toContain('.ferry/ferry.db');
      await expectRefused(
        ['--setup', 'setup.json', '--port', String(port)],
        `ferry: cannot listen on 127.0.0.1:${port}: address already in use (is another ferry running?)`,
        before,
      );
      expect(fs.existsSync(path.join(dir, '.ferry/lock'))).toBe(false);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  it('a stale lock (dead pid, garbage, a reused pid) is taken over; a SIGKILLed daemon’s lock too', async () => {
    const file = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: ALL_TO('A', 'B') });
    const lock = path.join(dir, '.ferry/lock');
    await fsp.mkdir(path.dirname(lock));
    const dead = spawn(process.execPath, ['-e', '']);
    const deadPid = dead.pid!;
    await new Promise((resolve) => dead.once('exit', resolve));

    // A live pid whose start time differs is not the process that wrote the lock.
    for (const stale of [`${deadPid}\n`, 'not a pid\n', '', `${process.pid}\n1\n`]) {
      await fsp.writeFile(lock, stale);
      const d = await startDaemon(file);
      expect(fs.readFileSync(lock, 'utf8').split('\n')[0], `taken over from ${JSON.stringify(stale)}`).toBe(String(d.process.pid));
      expect(await d.stop()).toBe(0);
      expect(fs.existsSync(lock)).toBe(false);
    }

    // A live pid (this test's, no start time to tell otherwise) holds it.
    await fsp.writeFile(lock, `${process.pid}\n`);
    await expectRefused(['--setup', 'setup.json', '--port', '0'], `ferry: another ferry (pid ${process.pid}) is already running on ${dir}/.ferry`);
    await fsp.rm(lock);

    const killed = await startDaemon(file);
    killed.process.kill('SIGKILL');
    await new Promise((resolve) => killed.process.once('exit', resolve));
    expect(fs.readFileSync(lock, 'utf8').split('\n')[0], 'SIGKILL leaves the lock').toBe(String(killed.process.pid));
    const next = await startDaemon(file);
    daemons.push(next);
    expect(fs.readFileSync(lock, 'utf8').split('\n')[0]).toBe(String(next.process.pid));
    await fsp.writeFile(path.join(dir, 'A/after-kill.txt'), 'synced by the next daemon');
    await until('after-kill.txt in B', () => fs.existsSync(path.join(dir, 'B/after-kill.txt')));
  });
});
