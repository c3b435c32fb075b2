import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  api,
  bigContent,
  daemonIn,
  dropBig,
  faultHarness,
  logged,
  waitLogged,
  PARTIAL,
  running,
  setupIn,
  sha256,
  sha256File,
  slowWrites,
  status,
  temporaries,
  until,
  type RunningDaemon,
} from './faults-helpers.js';

/**
 * Issue 5, the data itself: a source rewritten while it is copied, partial files with wrong
 * bytes, and replicas edited on both sides. Every version the user wrote ends up somewhere,
 * byte for byte, and no copy ever holds a mix of two versions.
 */

const ctx = faultHarness('ferry-faults-data-');
const at = (entry: string, rel: string) => path.join(ctx.dir, entry, rel);
const MIB = 1 << 20;

/** What GET /files says of one file. */
async function fileInfo(d: RunningDaemon, filename: string) {
  const res = await api(d.api, 'GET', '/files?limit=1000');
  return (res.body.files as { filename: string; size: number; owners: string[]; uptodate: string[] }[]).find(
    (f) => f.filename === filename,
  );
}

/**
 * Watches `file` every few ms: each new state (inode, size, mtime) of it is read at once and
 * judged by `judge`, so that every content it ever showed is checked. Reading a replaced file
 * still reads the inode opened, which Ferry never writes in place.
 */
function recordContents(file: string, judge: (content: Buffer) => string | null) {
  const verdicts: string[] = [];
  const wrong: string[] = [];
  let last = '';
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const s = fs.statSync(file, { throwIfNoEntry: false });
      const key = s ? `${s.ino}/${s.size}/${s.mtimeMs}` : '';
      if (s && key !== last) {
        last = key;
        try {
          const content = await fsp.readFile(file);
          const verdict = judge(content);
          if (verdict === null) wrong.push(`${file}: ${content.length} bytes that A never held (sha256 ${sha256(content)})`);
          else verdicts.push(verdict);
        } catch {
          last = ''; // replaced between the stat and the open: its next state is read next time
        }
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    verdicts,
    wrong,
    async stop() {
      stop = true;
      await loop;
    },
  };
}

describe('multipass: a source rewritten while its transfer runs', () => {
  it('rewritten 10 times with different content mid-transfer, the destinations end with exactly the last version, never a mix', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B', 'C']));
    const SIZE = 64;
    const versions: Buffer[] = [];
    // What A held at some moment: a whole version, or (while a rewrite was under way, the writer
    // truncated and not done) the first bytes of one. Never bytes of two versions together.
    const judge = (content: Buffer): string | null => {
      for (let v = versions.length - 1; v >= 0; v--) {
        if (content.length <= versions[v].length && versions[v].subarray(0, content.length).equals(content)) {
          return content.length === versions[v].length ? `v${v}` : `v${v}[0..${content.length})`;
        }
      }
      return null;
    };
    const watched = [recordContents(at('B', 'big.bin'), judge), recordContents(at('C', 'big.bin'), judge)];
    try {
      const seenPartials = new Set<string>();
      for (let v = 0; v < 10; v++) {
        const content = bigContent(SIZE, `version ${v} ${Math.random()}`);
        versions.push(content);
        // In place, as `dd` or an editor does: truncated, then written; same name and inode.
        fs.writeFileSync(at('A', 'big.bin'), content);
        // The next rewrite comes while the copy of this one is under way in B.
        await until(
          `the copy of version ${v} under way`,
          () => {
            const p = temporaries(path.join(ctx.dir, 'B'), PARTIAL).find((t) => t.size > 0 && !seenPartials.has(t.name));
            if (p) seenPartials.add(p.name);
            return p;
          },
          5000,
          1,
        ).catch(() => null);
      }
      const last = sha256(versions[versions.length - 1]);
      for (const entry of ['B', 'C']) {
        await until(
          `the last version in ${entry}`,
          async () => fs.statSync(at(entry, 'big.bin'), { throwIfNoEntry: false })?.size === SIZE * MIB && (await sha256File(at(entry, 'big.bin'))) === last,
          90_000,
          200,
        );
      }
      await until('B and C up to date in the listing', async () => {
        const f = await fileInfo(d, 'big.bin');
        return f && f.uptodate.length === 3;
      });
    } finally {
      for (const w of watched) await w.stop();
    }
    for (const w of watched) {
      expect(w.wrong, 'a destination showed a mix of versions').toEqual([]);
      expect(w.verdicts[w.verdicts.length - 1]).toBe('v9');
    }
    expect(await sha256File(at('A', 'big.bin'))).toBe(sha256(versions[9]));
    // The rewrites did land in the middle of copies: some were found stale and dropped.
    await waitLogged(d, /^job stale: source A:big\.bin changed/);
    await until('no partial file left', () =>
      ['B', 'C'].every((e) => temporaries(path.join(ctx.dir, e)).length === 0),
    );
  });
});

/** partialName() of local-storage.ts: the partial file of one version of a file. */
function partialName(rel: string, stat: { size: number; mtime: number }): string {
  const id = createHash('sha256').update(`${rel}\0${stat.size}\0${stat.mtime}`).digest('hex').slice(0, 24);
  return `.ferry-part-${id}`;
}

describe('integrity of resumed copies', () => {
  it('a partial file of the right name with wrong bytes fails the check, is dropped, and the copy is redone right', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']));
    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    const content = bigContent(64);
    const expected = await dropBig(ctx, at('A', 'big.bin'), content);
    await until('big.bin known', () => fileInfo(d, 'big.bin'));
    const s = fs.statSync(at('A', 'big.bin'));
    // A torn partial: the first 16 MiB of the source, one byte in the middle flipped.
    const torn = Buffer.from(content.subarray(0, 16 * MIB));
    torn[5 * MIB + 123] ^= 0xff;
    const name = partialName('big.bin', { size: s.size, mtime: s.mtimeMs });
    await fsp.writeFile(at('B', name), torn);

    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);
    await until('big.bin in B', () => fs.statSync(at('B', 'big.bin'), { throwIfNoEntry: false })?.size === 64 * MIB, 60_000);
    expect(await sha256File(at('B', 'big.bin'))).toBe(expected);
    const resumed = await waitLogged(d, /^resuming the copy of big\.bin at /, 'B');
    expect(resumed[0]?.offset, 'the planted partial was taken up').toBe(16 * MIB);
    await waitLogged(d, /^integrity check failed for big\.bin/, 'B');
    await waitLogged(d, /^job failed: integrity check failed for big\.bin/, 'B');
    expect(await waitLogged(d, /^copied big\.bin in B$/, 'B')).toHaveLength(1);
    await until('no partial left', () => temporaries(path.join(ctx.dir, 'B')).length === 0);
    await until('B up to date, no failing job', async () => {
      const st = await status(d, 'B');
      const f = await fileInfo(d, 'big.bin');
      return st.status === 'active' && st.reason === undefined && f?.uptodate.includes('B');
    });
  });

  it('a partial file left by an interrupted copy, then damaged, is caught by the digest and the copy is redone', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']));
    // B's disk is slow (writes held 10 ms each): the copy is caught in its middle.
    const pid = (await until('B running', async () => (await api(d.api, 'GET', '/entries/B/stats')).body.info?.pid as number))!;
    await slowWrites(ctx, pid);
    const expected = await dropBig(ctx, at('A', 'big.bin'), bigContent(128));
    // Interrupted: B is stopped while its copy runs; the partial file stays for a resume.
    await until('a partial with some bytes', () => temporaries(path.join(ctx.dir, 'B'), PARTIAL).find((t) => t.size > MIB), 30_000, 1);
    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    await until('the worker gone, its last write done', () => !running(pid));
    expect(fs.existsSync(at('B', 'big.bin'))).toBe(false);
    const [partial] = temporaries(path.join(ctx.dir, 'B'), PARTIAL);
    expect(partial.size).toBeLessThan(128 * MIB);
    // Bit rot in what was written: flip bytes in its first MiB.
    const fd = fs.openSync(at('B', partial.name), 'r+');
    fs.writeSync(fd, Buffer.from('not what the source holds'), 0, 25, 4096);
    fs.closeSync(fd);

    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);
    await until('big.bin in B', () => fs.statSync(at('B', 'big.bin'), { throwIfNoEntry: false })?.size === 128 * MIB, 60_000);
    expect(await sha256File(at('B', 'big.bin'))).toBe(expected);
    expect((await waitLogged(d, /^resuming the copy of big\.bin at /, 'B'))[0].offset).toBe(partial.size);
    await waitLogged(d, /^integrity check failed for big\.bin/, 'B');
    await until('no partial left', () => temporaries(path.join(ctx.dir, 'B')).length === 0);
  });
});

describe('conflicts: a replica with changes never synced', () => {
  it('B edited while stopped and A edited too: both versions survive, the conflict copy syncs and is listed', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']));
    await fsp.mkdir(at('A', 'docs'), { recursive: true });
    await fsp.writeFile(at('A', 'docs/notes.txt'), 'first version, from A');
    await until('notes in B', () => fs.readFileSync(at('B', 'docs/notes.txt'), 'utf8') === 'first version, from A');
    await until('B up to date', async () => (await fileInfo(d, 'docs/notes.txt'))?.uptodate.length === 2);

    expect((await api(d.api, 'PUT', '/entries/B/stop')).status).toBe(200);
    await fsp.writeFile(at('B', 'docs/notes.txt'), "B's edit, made while B was stopped, never synced");
    await fsp.writeFile(at('A', 'docs/notes.txt'), "A's edit, made meanwhile");
    await until("A's edit recorded", async () => {
      const f = await fileInfo(d, 'docs/notes.txt');
      return f && f.uptodate.length === 1 && f.uptodate[0] === 'A' && f.size === "A's edit, made meanwhile".length;
    });
    const before = Date.now() / 1000;
    expect((await api(d.api, 'PUT', '/entries/B/start')).status).toBe(200);

    const contents = new Set(["B's edit, made while B was stopped, never synced", "A's edit, made meanwhile"]);
    let conflictName = '';
    await until('one conflict copy in both entries, every version kept', () => {
      for (const e of ['A', 'B']) {
        const names = fs.readdirSync(at(e, 'docs')).filter((n) => !n.startsWith('.'));
        const conflicts = names.filter((n) => /^notes\.sync-conflict-\d{8}-\d{6}-(A|B)\.txt$/.test(n));
        if (names.length !== 2 || conflicts.length !== 1) return false;
        conflictName = conflicts[0];
        const held = new Set(names.map((n) => fs.readFileSync(path.join(at(e, 'docs'), n), 'utf8')));
        if (held.size !== 2 || ![...contents].every((c) => held.has(c))) return false;
      }
      return true;
    }, 30_000);
    for (const e of ['A', 'B']) {
      expect(fs.readFileSync(at(e, 'docs/notes.txt'), 'utf8')).toBe(fs.readFileSync(at(e === 'A' ? 'B' : 'A', 'docs/notes.txt'), 'utf8'));
    }
    const res = await until('the conflict listed', async () => {
      const r = await api(d.api, 'GET', '/conflicts');
      return r.body.conflicts.length === 1 && r.body.conflicts[0].uptodate.length === 2 ? r : null;
    });
    expect(res!.status).toBe(200);
    const [conflict] = res!.body.conflicts;
    const entry = /-(A|B)\.txt$/.exec(conflictName)![1];
    expect(conflict).toMatchObject({
      filename: `docs/${conflictName}`,
      original: 'docs/notes.txt',
      entry,
      owners: ['A', 'B'],
      uptodate: ['A', 'B'],
    });
    // The second of the name: within a few seconds of the start that found the conflict.
    expect(conflict.time).toBeGreaterThanOrEqual(Math.floor(before) - 1);
    expect(conflict.time).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(await waitLogged(d, /^kept a conflicting copy as docs\/notes\.sync-conflict-/, entry)).toHaveLength(1);
  });
});
