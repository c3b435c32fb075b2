import fsp from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { api, daemonHarness, startDaemon, until, writeSetup, type RunningDaemon } from './helpers.js';

/** GET /entries/NAME/stats answers from the entry's snapshot, which its sampler keeps fresh. */

const harness = daemonHarness('ferry-stats-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

describe('stats', () => {
  it('shows a real CPU percentage for a worker busy copying', async () => {
    const setupFile = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] });
    for (let d = 0; d < 20; d++) {
      await fsp.mkdir(path.join(dir, 'A', `d${d}`), { recursive: true });
      for (let f = 0; f < 400; f++) await fsp.writeFile(path.join(dir, 'A', `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(20));
    }
    const d = await startDaemon(setupFile);
    daemons.push(d);
    // B's worker copies 8,000 files meanwhile: sampled every 2 s, its CPU shows.
    const busy = await until('a non-zero cpu for B while it copies', async () => {
      const r = await api(d.api, 'GET', '/entries/B/stats');
      return r.status === 200 && r.body.info.cpu > 0 ? r.body : null;
    }, 30_000, 100);
    expect(busy.info.cpu).toBeGreaterThan(0);
    expect(busy.info.pid).toEqual(expect.any(Number));
    expect(busy.status).toBe('ok');
  });
});
