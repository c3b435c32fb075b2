import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SseStream } from './sse.js';
import {
  api,
  bigContent,
  CAN_SLOW_WRITES,
  daemonIn,
  dropBig,
  faultHarness,
  logged,
  waitLogged,
  PARTIAL,
  running,
  setupIn,
  sha256File,
  slowWrites,
  status,
  temporaries,
  TEMPORARY,
  until,
  watchFinalName,
  workerPid,
  type RunningDaemon,
} from './faults-helpers.js';

/**
 * Issue 5, crashes and resumes: real SIGKILLs of workers and of the daemon in the middle of
 * large transfers, and a SIGTERM during one. Nothing the user wrote may be lost, and nothing
 * half-written may ever show under a file's own name.
 */

const ctx = faultHarness('ferry-faults-crash-');
const at = (entry: string, rel: string) => path.join(ctx.dir, entry, rel);

const MIB = 1 << 20;

/** Waits for a transfer to be under way in `folder` (a partial with some bytes), polling every ms. */
async function transferUnderWay(folder: string, finalFile: string): Promise<{ name: string; size: number }> {
  const found = await until(
    'a partial file with some bytes',
    () => temporaries(folder, PARTIAL).find((t) => t.size > 0) ?? (fs.existsSync(finalFile) ? 'done' : null),
    30_000,
    1,
  );
  expect(found, 'the copy finished before it could be interrupted').not.toBe('done');
  return found as { name: string; size: number };
}

/** The 'resuming the copy' log lines of an entry, with their offsets. */
const resumes = async (d: RunningDaemon, entry: string) =>
  (await waitLogged(d, /^resuming the copy of /, entry)).map((l) => ({ msg: l.msg as string, offset: l.offset as number }));

describe('a worker that keeps dying', () => {
  it('restarts with growing delays, reads "restarting" meanwhile, and stats count the restarts', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']));
    const events = await SseStream.open(`${d.api}/events`);
    try {
      let pid = (await until('B running', () => workerPid(d, 'B')))!;
      const KILLS = 4;
      for (let round = 1; round <= KILLS; round++) {
        process.kill(pid, 'SIGKILL');
        const during = await until(`B restarting after kill ${round}`, async () => {
          const s = await status(d, 'B');
          return s.status === 'restarting' ? s : null;
        }, 20_000, 10);
        expect(during!.reason).toMatch(/worker exited unexpectedly \(signal SIGKILL\)/);
        // The API refuses what a restarting entry cannot do.
        expect((await api(d.api, 'GET', '/entries/B/stats')).status).toBe(409);
        const previous = pid;
        pid = (await until(`B back after kill ${round}`, async () => {
          const p = await workerPid(d, 'B');
          return p !== null && p !== previous ? p : null;
        }, 30_000, 10))!;
        expect(running(pid)).toBe(true);
      }
      const stats = await api(d.api, 'GET', '/entries/B/stats');
      expect(stats.status).toBe(200);
      expect(stats.body.info.restarts).toBe(KILLS);
      expect(stats.body.info.pid).toBe(pid);

      // The delay of each restart, from the event stream: entering `restarting` → leaving it.
      const transitions = events.events.filter((e) => e.event === 'transition' && e.data.actor === 'entry:B');
      const delays: number[] = [];
      let entered: number | null = null;
      for (const t of transitions) {
        if (t.data.to === 'restarting') entered = t.data.time;
        else if (t.data.from === 'restarting' && entered !== null) {
          delays.push(t.data.time - entered);
          entered = null;
        }
      }
      expect(delays, JSON.stringify(transitions.map((t) => t.data))).toHaveLength(KILLS);
      for (let i = 1; i < delays.length; i++) expect(delays[i], `delays ${delays.join(', ')} s`).toBeGreaterThan(delays[i - 1]);
      expect(await waitLogged(d, /^worker exited unexpectedly$/, 'B', KILLS)).toHaveLength(KILLS);

      // And it still works.
      await fsp.writeFile(at('A', 'after.txt'), 'after four crashes');
      await until('after.txt in B', () => fs.readFileSync(at('B', 'after.txt'), 'utf8') === 'after four crashes');
      expect((await status(d, 'A')).status).toBe('active');
    } finally {
      await events.close();
    }
  });
});

describe('a large transfer cut short', () => {
  it('resumes where it stopped after SIGKILL of the destination worker; the final name is never partial', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']));
    const pid = (await until('B running', () => workerPid(d, 'B')))!;
    // B's disk is slow (its writes held 10 ms each): the copy takes seconds, cut in its middle.
    await slowWrites(ctx, pid);
    const SIZE = 200;
    const content = bigContent(SIZE);
    const watch = watchFinalName(at('B', 'big.bin'), (size) => size === SIZE * MIB);
    try {
      const expected = await dropBig(ctx, at('A', 'big.bin'), content);
      const partial = await transferUnderWay(path.join(ctx.dir, 'B'), at('B', 'big.bin'));
      process.kill(pid, 'SIGKILL');
      await until('the killed worker gone', () => !running(pid));
      const left = temporaries(path.join(ctx.dir, 'B'), PARTIAL);
      expect(left.map((t) => t.name)).toEqual([partial.name]);
      const stoppedAt = left[0].size;
      expect(stoppedAt).toBeGreaterThan(0);
      expect(stoppedAt).toBeLessThan(SIZE * MIB);
      expect(fs.existsSync(at('B', 'big.bin'))).toBe(false);

      await until('big.bin complete in B', () => fs.statSync(at('B', 'big.bin'), { throwIfNoEntry: false })?.size === SIZE * MIB, 90_000);
      expect(await sha256File(at('B', 'big.bin'))).toBe(expected);
      const resumed = await resumes(d, 'B');
      expect(resumed.length, 'a resume is logged').toBeGreaterThanOrEqual(1);
      expect(resumed[0].msg).toMatch(/^resuming the copy of big\.bin at \d+ of 209715200 bytes$/);
      // It went on from the bytes the killed worker had written, not from zero.
      expect(resumed[0].offset).toBe(stoppedAt);
      await until('no temporary left in B', () => temporaries(path.join(ctx.dir, 'B')).length === 0);
      expect((await status(d, 'B')).status).toBe('active');
    } finally {
      await watch.stop();
    }
    expect(watch.torn).toEqual([]);
    expect(watch.seen).toHaveLength(1);
  });

  it('after SIGKILL of the daemon, a new daemon on the same setup resumes it, cleans stale temporaries, and converges', async () => {
    const file = await setupIn(ctx, ['A', 'B']);
    const first = await daemonIn(ctx, file);
    const workers = [(await until('A running', () => workerPid(first, 'A')))!, (await until('B running', () => workerPid(first, 'B')))!];
    await fsp.writeFile(at('A', 'small.txt'), 'before the crash');
    await until('small.txt in B', () => fs.existsSync(at('B', 'small.txt')));

    const SIZE = 200;
    await slowWrites(ctx, workers[1]);
    const watch = watchFinalName(at('B', 'big.bin'), (size) => size === SIZE * MIB);
    try {
      const expected = await dropBig(ctx, at('A', 'big.bin'), bigContent(SIZE));
      await transferUnderWay(path.join(ctx.dir, 'B'), at('B', 'big.bin'));
      first.process.kill('SIGKILL');
      // The workers notice their daemon is gone and leave on their own, keeping the partial file.
      await until('the workers gone', () => workers.every((p) => !running(p)));
      expect(fs.existsSync(at('B', 'big.bin'))).toBe(false);
      const left = temporaries(path.join(ctx.dir, 'B'), PARTIAL);
      expect(left).toHaveLength(1);
      const stoppedAt = left[0].size;
      expect(stoppedAt).toBeGreaterThan(0);
      expect(stoppedAt).toBeLessThan(SIZE * MIB);

      // While it was down: a stale temporary of some other crash, and a change in A.
      await fsp.mkdir(at('B', 'sub'), { recursive: true });
      await fsp.writeFile(at('B', '.ferry-tmp-0123456789abcdef'), 'half of something');
      await fsp.writeFile(at('B', 'sub/.ferry-tmp-fedcba9876543210'), 'half of something else');
      await fsp.writeFile(at('A', 'while-down.txt'), 'written while the daemon was down');

      const second = await daemonIn(ctx, file);
      await until('big.bin complete in B', () => fs.statSync(at('B', 'big.bin'), { throwIfNoEntry: false })?.size === SIZE * MIB, 90_000);
      expect(await sha256File(at('B', 'big.bin'))).toBe(expected);
      const resumed = await resumes(second, 'B');
      expect(resumed.length).toBeGreaterThanOrEqual(1);
      expect(resumed[0].offset).toBe(stoppedAt);
      await until('while-down.txt in B', () => fs.existsSync(at('B', 'while-down.txt')));
      expect(fs.readFileSync(at('B', 'while-down.txt'), 'utf8')).toBe('written while the daemon was down');
      expect(fs.readFileSync(at('B', 'small.txt'), 'utf8')).toBe('before the crash');
      await until('no temporary left anywhere in B', () =>
        [path.join(ctx.dir, 'B'), at('B', 'sub')].every((f) => temporaries(f).length === 0),
      );
      await until('the listing converged', async () => {
        const res = await api(second.api, 'GET', '/files');
        const files = res.body.files as { filename: string; uptodate: string[] }[];
        return files.length === 3 && files.every((f) => f.uptodate.length === 2);
      });
    } finally {
      await watch.stop();
    }
    expect(watch.torn).toEqual([]);
  });
});

describe('SIGTERM during a large transfer', () => {
  it('exits 0 within 10 s, leaves nothing partial under the final name, flushes the store; the next start finishes the copy', async () => {
    const file = await setupIn(ctx, ['A', 'B']);
    const d = await daemonIn(ctx, file);
    // A dashboard watching: its event stream must not hold the shutdown up.
    const events = await SseStream.open(`${d.api}/events`);
    const SIZE = 200;
    await slowWrites(ctx, (await until('B running', () => workerPid(d, 'B')))!);
    const watch = watchFinalName(at('B', 'big.bin'), (size) => size === SIZE * MIB);
    let expected: string;
    try {
      expected = await dropBig(ctx, at('A', 'big.bin'), bigContent(SIZE));
      await transferUnderWay(path.join(ctx.dir, 'B'), at('B', 'big.bin'));
      const pids = [(await workerPid(d, 'A'))!, (await workerPid(d, 'B'))!];
      const t0 = Date.now();
      const code = await d.stop('SIGTERM');
      const elapsed = Date.now() - t0;
      expect(code).toBe(0);
      expect(elapsed, `exited after ${elapsed} ms`).toBeLessThan(10_000);
      expect(pids.every((p) => !running(p))).toBe(true);
      await events.closed();
    } finally {
      await watch.stop();
      await events.close();
    }
    expect(watch.torn).toEqual([]);
    // Either the copy was committed whole before the end, or it is absent; its partial stays for a resume.
    const done = fs.existsSync(at('B', 'big.bin'));
    if (done) expect(await sha256File(at('B', 'big.bin'))).toBe(expected!);
    // With a slow disk the copy was surely cut short: its partial file stays, for a resume.
    const partial = temporaries(path.join(ctx.dir, 'B'), PARTIAL);
    if (CAN_SLOW_WRITES) {
      expect(done).toBe(false);
      expect(partial).toHaveLength(1);
      expect(partial[0].size).toBeGreaterThan(0);
      expect(partial[0].size).toBeLessThan(SIZE * MIB);
    }
    expect(d.stderr()).toBe('');
    expect(await waitLogged(d, /^ferry stopped$/)).toHaveLength(1);
    // The store was checkpointed and closed: no write-ahead log left to replay.
    const wal = path.join(ctx.dir, '.ferry', 'ferry.db-wal');
    expect(fs.statSync(wal, { throwIfNoEntry: false })?.size ?? 0).toBe(0);

    const again = await daemonIn(ctx, file);
    await until('big.bin complete in B', () => fs.statSync(at('B', 'big.bin'), { throwIfNoEntry: false })?.size === SIZE * MIB, 90_000);
    expect(await sha256File(at('B', 'big.bin'))).toBe(expected!);
    if (!done) expect((await resumes(again, 'B'))[0].offset).toBe(partial[0].size);
    await until('no temporary left in B', () => temporaries(path.join(ctx.dir, 'B'), TEMPORARY).length === 0);
  });
});
