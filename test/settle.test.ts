import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { daemonHarness, startDaemon, until, type RunningDaemon } from './helpers.js';

/** settle_ms: a file under active writing is copied once its writer has paused long enough. */

const harness = daemonHarness('ferry-settle-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

async function setup(settleMs: number): Promise<string> {
  const entries: Record<string, unknown> = {};
  for (const name of ['A', 'B']) {
    await fsp.mkdir(path.join(dir, name), { recursive: true });
    entries[name] = { driver: 'local_storage', options: { root: name, settle_ms: settleMs } };
  }
  const file = path.join(dir, 'setup.json');
  await fsp.writeFile(file, JSON.stringify({ entries, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] }));
  return file;
}

describe('settle_ms', () => {
  it('never shows a slow writer\'s file truncated under its real name in another entry', async () => {
    const d = await startDaemon(await setup(2000));
    daemons.push(d);
    const chunks = Array.from({ length: 10 }, () => randomBytes(100_000));
    const whole = Buffer.concat(chunks);
    const target = path.join(dir, 'B', 'slow.bin');

    // B's copy polled every 2 ms while A's is written in ten pieces with 300 ms pauses.
    const sizesSeen = new Set<number>();
    let polling = true;
    const watcher = (async () => {
      while (polling) {
        try {
          sizesSeen.add(fs.statSync(target).size);
        } catch {
          // not there yet
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const source = path.join(dir, 'A', 'slow.bin');
    for (const [i, chunk] of chunks.entries()) {
      fs.appendFileSync(source, chunk);
      if (i < chunks.length - 1) await new Promise((r) => setTimeout(r, 300));
    }
    // Waits on the poller itself: a check of its own could see the file appear between two of
    // the poller's stats and stop it before it saw any size (the CI run of 8388f88 did).
    await until('the poller to see slow.bin whole in B', () => sizesSeen.has(whole.length), 20_000);
    expect(fs.readFileSync(target).equals(whole)).toBe(true);
    polling = false;
    await watcher;
    expect([...sizesSeen]).toEqual([whole.length]);
    // Copied once, after the writer stopped (the daemon logs a copy once the worker reports it,
    // a moment after the file is in place).
    const copies = () => d.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('copied slow.bin in B')).length;
    await until('the copy logged', () => copies() >= 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(copies()).toBe(1);
  });
});
