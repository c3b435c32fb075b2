import fsp from 'node:fs/promises';
import path from 'node:path';
import { v5 as uuidv5 } from 'uuid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Catalogue, type FileRecord } from '../src/store/catalogue.js';
import { tempDir, until } from './helpers.js';
import { API, apiHarness, errorWith } from './api-harness.js';

/**
 * GET /api/v1.0/files?pending=ENTRY&failing=true&q=TEXT: the filters on a real daemon (a real
 * failing copy), and the Catalogue queries behind them on a store of made-up rows, with the
 * plan SQLite runs for each.
 */

const fid = (filename: string) => uuidv5(filename, 'bcd336f2-d023-4856-bc92-e79dd24b64d7');

describe('API 1.0: GET /files with filters', () => {
  const h = apiHarness();

  const names = (res: { body: { files: { filename: string }[] } }) => res.body.files.map((f) => f.filename);

  it('pending, failing and q select, combine and page; failing files carry their reason', async () => {
    // B's root holds a file "backedup" where A has a folder: B cannot write backedup/r.pdf, A
    // cannot write "backedup". B stopped meanwhile would queue, not fail: both run. Both are
    // written with the daemon down (a running one could make either first in the other root).
    await h.daemon.stop();
    await h.write('A', 'backedup/r.pdf', '%PDF-1.7 r\n');
    await h.write('B', 'backedup', 'plain\n');
    await h.write('A', 'Mixed_Case%.TXT', 'm\n');
    await h.write('A', 'mixed-case.txt', 'm2\n');
    await h.restartDaemon();
    const file = (filename: string, size: number, owners: string[], uptodate: string[]) => ({ fid: fid(filename), filename, size, owners, uptodate });
    const all = [
      file('Mixed_Case%.TXT', 2, ['A'], ['A']),
      file('backedup', 6, ['A', 'B'], ['B']),
      file('backedup/r.pdf', 11, ['A', 'B'], ['A']),
      file('mixed-case.txt', 3, ['A'], ['A']),
    ];
    await h.filesSettle(all);
    await until('both copies to have failed', async () => (await h.call('GET', `${API}/files?failing=true`)).body.files.length === 2);

    const get = async (query: string) => {
      const res = await h.call('GET', `${API}/files?${query}`);
      expect(res.status, query).toBe(200);
      return res;
    };
    expect((await get('pending=B')).body).toEqual({ files: [all[2]] });
    expect((await get('pending=A')).body).toEqual({ files: [all[1]] });

    const failing = await get('failing=true');
    expect(failing.body).toEqual({
      files: [
        { ...all[1], reason: expect.stringMatching(/\S/) },
        { ...all[2], reason: expect.stringMatching(/EEXIST|ENOTDIR/) },
      ],
    });
    // The reason is the failing job's error, as the entry's status reports it.
    expect((await h.call('GET', `${API}/entries/B/status`)).body.reason).toContain(failing.body.files[1].reason);
    // failing=false is no filter.
    expect((await get('failing=false')).body).toEqual({ files: all });

    // q: a substring of the filename, ASCII in any case; % and _ are plain characters.
    expect(names(await get('q=MIXED'))).toEqual(['Mixed_Case%.TXT', 'mixed-case.txt']);
    expect(names(await get('q=_case'))).toEqual(['Mixed_Case%.TXT']);
    expect(names(await get(`q=${encodeURIComponent('%.t')}`))).toEqual(['Mixed_Case%.TXT']);
    expect(names(await get('q=x_c'))).toEqual([]);
    expect(names(await get('q=.pdf'))).toEqual(['backedup/r.pdf']);

    // Combined, each narrowing the others.
    expect(names(await get('failing=true&pending=B'))).toEqual(['backedup/r.pdf']);
    expect(names(await get('failing=true&pending=A'))).toEqual(['backedup']);
    expect(names(await get('failing=true&q=PDF'))).toEqual(['backedup/r.pdf']);
    expect(names(await get('pending=B&q=nothing'))).toEqual([]);
    expect((await get('pending=B&failing=true&q=r.pdf')).body.files[0].reason).toMatch(/EEXIST|ENOTDIR/);

    // Pages of the matches, ordered by filename.
    expect(names(await get('q=e&limit=2'))).toEqual(['Mixed_Case%.TXT', 'backedup']);
    expect(names(await get('q=e&offset=1&limit=2'))).toEqual(['backedup', 'backedup/r.pdf']);
    expect(names(await get('q=e&offset=3'))).toEqual(['mixed-case.txt']);
    expect(names(await get('failing=true&offset=1&limit=1'))).toEqual(['backedup/r.pdf']);
    expect(names(await get('failing=true&offset=2'))).toEqual([]);

    // Once B can write the file (the obstacle renamed away), it is neither pending nor failing.
    await fsp.rename(path.join(h.dir, 'B', 'backedup'), path.join(h.dir, 'B', 'obstacle'));
    await until('backedup/r.pdf to reach B', async () => (await get('pending=B')).body.files.length === 0, 30_000);
    expect(names(await get('failing=true&pending=B'))).toEqual([]);
  });

  it('an unknown pending entry is a 404; bad values are 400s in the error format', async () => {
    const bad = async (query: string, status: number, ...fragments: string[]) => {
      const res = await h.call('GET', `${API}/files?${query}`);
      expect(res.status, query).toBe(status);
      expect(res.body, query).toEqual(errorWith(...fragments));
    };
    expect((await h.call('GET', `${API}/files?pending=C`)).body).toEqual({ reason: 'entry C not found', status: 'error' });
    await bad('pending=C', 404, 'entry C not found');
    await bad('pending=C&failing=true&q=x', 404, 'entry C not found');
    await bad('pending=a%20b', 400, 'pending');
    await bad('pending=', 400, 'pending');
    await bad('failing=yes', 400, 'failing');
    await bad('q=', 400, 'q');
    await bad(`q=${'x'.repeat(1025)}`, 400, 'q');
    await bad('q=a&q=b', 400, 'q');
    await bad('q=a&offset=-1', 400, 'offset');
    await bad('pending=A&limit=x', 400, 'limit');
  });
});

describe('Catalogue.findFiles', () => {
  let dir: string;
  let store: Catalogue;
  beforeEach(async () => {
    dir = await tempDir('ferry-catalogue-');
    store = new Catalogue(path.join(dir, 'ferry.db'));
  });
  afterEach(async () => {
    store.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const put = (filename: string, owners: string[], uptodate: string[], deleted = false): FileRecord => {
    const f = { fid: fid(filename), filename, size: filename.length, version: 1, owners, uptodate, deleted };
    store.putFile(f);
    return f;
  };
  const job = (entry: string, filename: string, lastError: string | null = null) => {
    store.insertJob({ entry, fid: fid(filename), kind: 'upload', fromFilename: null, version: 1, preserve: false });
    if (lastError !== null) store.updateJob({ ...store.job(entry, fid(filename))!, attempts: 1, lastError });
  };
  const names = (files: FileRecord[]) => files.map((f) => f.filename);

  it('answers exactly the files of each definition, in filename order, by page', () => {
    put('a.txt', ['A'], ['A']);
    put('b.txt', ['A', 'B'], ['A']);
    job('B', 'b.txt');
    put('c.txt', ['A', 'B'], ['A']);
    job('B', 'c.txt', 'ENOSPC: no space left on device');
    job('A', 'c.txt', 'the latest error');
    put('d.txt', ['A', 'B_2'], ['A']);
    job('B_2', 'd.txt');
    put('e.txt', ['A', 'B'], ['A', 'B']);
    job('B', 'e.txt'); // a job left for a file B holds: not pending
    put('gone.txt', ['A', 'B'], ['A'], true);
    job('B', 'gone.txt', 'deleted meanwhile'); // a tombstone is never listed

    expect(names(store.findFiles({ pending: 'B' }, 0, 100))).toEqual(['b.txt', 'c.txt']);
    // "B" is not found inside "B_2", nor "_" taken as a wildcard.
    expect(names(store.findFiles({ pending: 'B_2' }, 0, 100))).toEqual(['d.txt']);
    expect(names(store.findFiles({ pending: 'A' }, 0, 100))).toEqual([]);
    expect(names(store.findFiles({ pending: 'B' }, 1, 1))).toEqual(['c.txt']);

    const failing = store.findFiles({ failing: true }, 0, 100);
    expect(failing.map((f) => [f.filename, f.reason])).toEqual([['c.txt', 'the latest error']]);
    expect(store.findFiles({ pending: 'B', failing: true }, 0, 100).map((f) => [f.filename, f.reason])).toEqual([['c.txt', 'the latest error']]);
    // Files that match no filter come from the plain listing, without a reason.
    expect(store.findFiles({}, 0, 100)).toEqual(store.listFiles(0, 100));
    expect(store.findFiles({ failing: false }, 0, 2)).toEqual(store.listFiles(0, 2));
    expect(store.findFiles({ pending: 'B' }, 0, 100).every((f) => !('reason' in f))).toBe(true);

    expect(names(store.findFiles({ q: '.TX' }, 0, 100))).toEqual(['a.txt', 'b.txt', 'c.txt', 'd.txt', 'e.txt']);
    expect(names(store.findFiles({ q: '_' }, 0, 100))).toEqual([]);
    // The LIKE's escape character is escaped too.
    put('x\\%y.txt', ['A'], ['A']);
    expect(names(store.findFiles({ q: '\\' }, 0, 100))).toEqual(['x\\%y.txt']);
    expect(names(store.findFiles({ q: '\\%' }, 0, 100))).toEqual(['x\\%y.txt']);
    expect(names(store.findFiles({ q: 'x%' }, 0, 100))).toEqual([]);
    expect(names(store.findFiles({ q: 'c', pending: 'B' }, 0, 100))).toEqual(['c.txt']);
  });

  it('reads each filter through an index: the entry\'s jobs, the failing jobs, the listing in order', () => {
    put('a.txt', ['A', 'B'], ['A']);
    job('B', 'a.txt', 'boom');
    const plans: string[] = [];
    const prepare = store.db.prepare.bind(store.db);
    // Every statement findFiles prepares, explained.
    store.db.prepare = ((sql: string) => {
      if (sql.includes('@limit OFFSET @offset')) {
        plans.push(
          (prepare(`EXPLAIN QUERY PLAN ${sql}`).all({ pending: 'B', quoted: '"B"', like: '%a%', limit: 1, offset: 0 }) as { detail: string }[])
            .map((r) => r.detail)
            .join(' | '),
        );
      }
      return prepare(sql);
    }) as typeof store.db.prepare;
    store.findFiles({ pending: 'B' }, 0, 20);
    store.findFiles({ failing: true }, 0, 20);
    store.findFiles({ q: 'a' }, 0, 20);
    store.findFiles({ pending: 'B', failing: true, q: 'a' }, 0, 20);
    store.findFiles({ failing: true, q: 'a' }, 0, 20);
    expect(plans).toHaveLength(5);
    const [pending, failing, q, all3, failingQ] = plans as [string, string, string, string, string];
    expect(pending).toMatch(/^SEARCH j USING (COVERING )?INDEX jobs_queue \(entry=\?\)/);
    expect(failing).toMatch(/SCAN jobs USING INDEX jobs_failing/);
    expect(q).toBe('SEARCH f USING INDEX files_listing (deleted=?)');
    expect(all3).toMatch(/^SEARCH j USING (COVERING )?INDEX jobs_queue \(entry=\?\)/);
    expect(failingQ).toMatch(/SCAN jobs USING INDEX jobs_failing/);
    // Never a walk of the whole files or jobs table.
    for (const plan of plans) expect(plan).not.toMatch(/SCAN (f|files|j|jobs)( |$)(?!USING INDEX jobs_failing)/);
    // Statements are prepared once per combination.
    store.findFiles({ pending: 'B' }, 0, 20);
    expect(plans).toHaveLength(5);
  });
});
