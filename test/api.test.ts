import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { v5 as uuidv5 } from 'uuid';
import { describe, expect, it } from 'vitest';
import { alive, until } from './helpers.js';
import { API, apiHarness, errorWith, nowish } from './api-harness.js';

const NAMESPACE = 'bcd336f2-d023-4856-bc92-e79dd24b64d7';
const fid = (filename: string) => uuidv5(filename, NAMESPACE);

const file = (filename: string, size: number, owners: string[], uptodate = owners) => ({
  fid: fid(filename),
  filename,
  size,
  owners,
  uptodate,
});

describe('API 1.0: files', () => {
  const h = apiHarness();

  it('computes fids as uuid v5 of the filename in the Onitu namespace', () => {
    // Computed independently of the uuid package: a fixed value, so a namespace change shows.
    expect(fid('toto')).toBe('91473751-8e49-5240-b03c-96547fcd86dc');
  });

  it('GET /files lists the files of the roots ordered by filename, each exactly', async () => {
    await h.write('A', 'toto', Buffer.alloc(256, 't'));
    await h.write('A', 'photos/foo.jpg', Buffer.alloc(12345, 'j'));
    await h.write('A', 'backedup/x.pdf', Buffer.alloc(100, 'p'));
    await h.write('B', 'b-only.txt', 'only in B\n');

    const expected = [
      file('b-only.txt', 10, ['A', 'B']),
      file('backedup/x.pdf', 100, ['A', 'B']),
      file('photos/foo.jpg', 12345, ['A']),
      file('toto', 256, ['A']),
    ];
    await h.filesSettle(expected);

    const res = await h.call('GET', `${API}/files`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ files: expected });
    // The copies the rules asked for are on disk.
    expect(fs.readFileSync(path.join(h.dir, 'B', 'backedup/x.pdf'))).toEqual(Buffer.alloc(100, 'p'));
    expect(fs.readFileSync(path.join(h.dir, 'A', 'b-only.txt'), 'utf8')).toBe('only in B\n');
    expect(fs.existsSync(path.join(h.dir, 'B', 'toto'))).toBe(false);
  });

  it('GET /files with no file answers an empty list', async () => {
    const res = await h.call('GET', `${API}/files`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ files: [] });
  });

  it('GET /files pages with offset (default 0) and limit (default 20)', async () => {
    const names = Array.from({ length: 25 }, (_, i) => `p/${String(i).padStart(2, '0')}.txt`);
    for (const name of names) await h.write('A', name, name);
    const all = names.map((n) => file(n, n.length, ['A']));
    await h.filesSettle(all);

    const page = async (query: string) => {
      const res = await h.call('GET', `${API}/files${query}`);
      expect(res.status, query).toBe(200);
      return res.body;
    };
    expect(await page('')).toEqual({ files: all.slice(0, 20) });
    expect(await page('?offset=0&limit=20')).toEqual({ files: all.slice(0, 20) });
    expect(await page('?offset=20')).toEqual({ files: all.slice(20) });
    expect(await page('?offset=3&limit=5')).toEqual({ files: all.slice(3, 8) });
    expect(await page('?limit=5&offset=5')).toEqual({ files: all.slice(5, 10) });
    expect(await page('?offset=24&limit=20')).toEqual({ files: all.slice(24) });
    expect(await page('?offset=25')).toEqual({ files: [] });
    expect(await page('?offset=1000')).toEqual({ files: [] });
    expect(await page('?limit=1000')).toEqual({ files: all });

    // Walking the pages returns every file once, in order.
    const walked = [];
    for (let offset = 0; ; offset += 7) {
      const { files } = await page(`?offset=${offset}&limit=7`);
      if (files.length === 0) break;
      walked.push(...files);
    }
    expect(walked).toEqual(all);
  });

  it('GET /files caps a limit above 1000 at 1000', async () => {
    const names = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    await fsp.mkdir(path.join(h.dir, 'A', 'many'));
    await Promise.all(names.map((n) => fsp.writeFile(path.join(h.dir, 'A', n), 'x')));
    const expected = names.map((n) => file(n, 1, ['A']));
    // Every file listed with its final size (the watcher may first see a file still empty).
    await until(
      'the 1005 files to be listed',
      async () => {
        const first = await h.call('GET', `${API}/files?limit=1000`);
        const rest = await h.call('GET', `${API}/files?offset=1000`);
        const listed = [...first.body.files, ...rest.body.files];
        if (isDeepStrictEqual(listed, expected)) return true;
        throw new Error(`${listed.filter((f, i) => !isDeepStrictEqual(f, expected[i])).length} files differ, e.g. ${JSON.stringify(listed.find((f, i) => !isDeepStrictEqual(f, expected[i])))}`);
      },
      45_000,
      200,
    );

    const capped = await h.call('GET', `${API}/files?limit=5000`);
    expect(capped.status).toBe(200);
    expect(capped.body.files).toHaveLength(1000);
    expect(capped.body).toEqual({ files: expected.slice(0, 1000) });

    const exactly = await h.call('GET', `${API}/files?limit=1001`);
    expect(exactly.body.files).toHaveLength(1000);
    const rest = await h.call('GET', `${API}/files?offset=1000&limit=5000`);
    expect(rest.body).toEqual({ files: expected.slice(1000) });
  });

  it.each([
    ['offset', '-1'],
    ['offset', 'abc'],
    ['offset', '1.5'],
    ['limit', '-1'],
    ['limit', 'abc'],
    ['limit', '1.5'],
  ])('GET /files?%s=%s is a 400 naming the parameter', async (param, value) => {
    const res = await h.call('GET', `${API}/files?${param}=${value}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(errorWith(param));
  });

  it('GET /files/:fid/metadata answers the file exactly; an unknown fid is a 404', async () => {
    await h.write('A', 'photos/foo.jpg', Buffer.alloc(12345, 'j'));
    await h.write('A', 'backedup/x.pdf', Buffer.alloc(100, 'p'));
    const expected = [file('backedup/x.pdf', 100, ['A', 'B']), file('photos/foo.jpg', 12345, ['A'])];
    await h.filesSettle(expected);

    for (const f of expected) {
      const res = await h.call('GET', `${API}/files/${f.fid}/metadata`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(f);
    }

    const unknown = fid('nope');
    const missing = await h.call('GET', `${API}/files/${unknown}/metadata`);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ reason: `file ${unknown} not found`, status: 'error' });

    const garbage = await h.call('GET', `${API}/files/not-a-fid/metadata`);
    expect(garbage.status).toBe(404);
    expect(garbage.body).toEqual({ reason: 'file not-a-fid not found', status: 'error' });
  });

  it('a deleted file is no longer listed nor has metadata', async () => {
    await h.write('A', 'gone.txt', 'bye');
    await h.filesSettle([file('gone.txt', 3, ['A'])]);
    await fsp.rm(path.join(h.dir, 'A', 'gone.txt'));
    await h.filesSettle([]);
    const res = await h.call('GET', `${API}/files/${fid('gone.txt')}/metadata`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ reason: `file ${fid('gone.txt')} not found`, status: 'error' });
  });
});

describe('API 1.0: entries', () => {
  const h = apiHarness();

  // As written in the setup, and the absolute root (root_path, an addition to the spec's fields).
  const entryA = { name: 'A', driver: 'local_storage', options: { root: 'A' } };
  const entryB = { name: 'B', driver: 'local_storage', options: { root: 'B' } };
  const withRoot = (e: typeof entryA) => ({ ...e, root_path: path.join(h.dir, e.options.root) });

  const status = async (name: string) => (await h.call('GET', `${API}/entries/${name}/status`)).body.status;
  const pidOf = async (name: string): Promise<number> => {
    const res = await h.call('GET', `${API}/entries/${name}/stats`);
    expect(res.status).toBe(200);
    return res.body.info.pid;
  };

  it('GET /entries lists every entry as written in the setup', async () => {
    const res = await h.call('GET', `${API}/entries`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ entries: [withRoot(entryA), withRoot(entryB)] });
  });

  it('GET /entries/:name describes one entry; an unknown one is a 404', async () => {
    const a = await h.call('GET', `${API}/entries/A`);
    expect(a.status).toBe(200);
    expect(a.body).toEqual(withRoot(entryA));
    const b = await h.call('GET', `${API}/entries/B`);
    expect(b.body).toEqual(withRoot(entryB));

    const c = await h.call('GET', `${API}/entries/C`);
    expect(c.status).toBe(404);
    expect(c.body).toEqual({ reason: 'entry C not found', status: 'error' });
  });

  it('GET /entries/:name/status is active, stopped after a stop; an unknown entry is a 404', async () => {
    const t0 = Date.now();
    const active = await h.call('GET', `${API}/entries/A/status`);
    expect(active.status).toBe(200);
    expect(active.body).toEqual({ name: 'A', status: 'active', time: nowish(t0) });

    expect((await h.call('PUT', `${API}/entries/A/stop`)).status).toBe(200);
    const stopped = await h.call('GET', `${API}/entries/A/status`);
    expect(stopped.status).toBe(200);
    expect(stopped.body).toEqual({ name: 'A', status: 'stopped', time: nowish(t0) });
    // The other entry is untouched.
    expect((await h.call('GET', `${API}/entries/B/status`)).body).toEqual({ name: 'B', status: 'active', time: nowish(t0) });

    const c = await h.call('GET', `${API}/entries/C/status`);
    expect(c.status).toBe(404);
    expect(c.body).toEqual({ reason: 'entry C not found', status: 'error' });
  });

  it('GET /entries/:name/stats reads the worker process; 409 when stopped, 404 when unknown', async () => {
    const t0 = Date.now();
    const res = await h.call('GET', `${API}/entries/A/stats`);
    expect(res.status).toBe(200);
    const { info } = res.body;
    expect(Object.keys(info).sort()).toEqual(
      ['age', 'cpu', 'create_time', 'ctime', 'mem', 'mem_info1', 'mem_info2', 'pid', 'restarts', 'started'].sort(),
    );
    const number = (min = 0) => expect.toSatisfy((n: unknown) => typeof n === 'number' && Number.isFinite(n) && n >= min, `a number >= ${min}`);
    expect(res.body).toEqual({
      info: {
        age: number(),
        cpu: number(),
        create_time: number(1e9),
        ctime: expect.stringMatching(/^\d+:\d\d\.\d\d$/),
        mem: expect.toSatisfy((n: unknown) => typeof n === 'number' && n >= 0 && n <= 100, 'a percentage'),
        mem_info1: expect.stringMatching(/^\d+(\.\d)?[BKMGT]$/),
        mem_info2: expect.stringMatching(/^\d+(\.\d)?[BKMGT]$/),
        started: number(1e9),
        pid: expect.toSatisfy((n: unknown) => Number.isInteger(n) && (n as number) > 0, 'a pid'),
        restarts: 0,
      },
      name: 'A',
      status: 'ok',
      time: nowish(t0),
    });
    // The worker is a real process of its own, started during this test.
    expect(info.pid).not.toBe(process.pid);
    expect(alive(info.pid)).toBe(true);
    expect(info.started).toBeLessThanOrEqual(res.body.time);
    expect(info.started).toBeGreaterThanOrEqual(t0 / 1000 - 60);
    expect(info.mem_info1).not.toBe('0B');
    expect(info.mem_info2).not.toBe('0B');

    const b = await h.call('GET', `${API}/entries/B/stats`);
    expect(b.status).toBe(200);
    expect(b.body.info.pid).not.toBe(info.pid);

    expect((await h.call('PUT', `${API}/entries/A/stop`)).status).toBe(200);
    const stopped = await h.call('GET', `${API}/entries/A/stats`);
    expect(stopped.status).toBe(409);
    expect(stopped.body).toEqual({ reason: 'entry A is not running', status: 'error' });

    const c = await h.call('GET', `${API}/entries/C/stats`);
    expect(c.status).toBe(404);
    expect(c.body).toEqual({ reason: 'entry C not found', status: 'error' });
  });

  it('PUT stop stops the worker; stopping again is a 409', async () => {
    const t0 = Date.now();
    const pid = await pidOf('A');

    const res = await h.call('PUT', `${API}/entries/A/stop`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ name: 'A', status: 'ok', time: nowish(t0) });
    expect(await status('A')).toBe('stopped');
    await until(`worker ${pid} to exit`, () => !alive(pid));

    const again = await h.call('PUT', `${API}/entries/A/stop`);
    expect(again.status).toBe(409);
    expect(again.body).toEqual({ reason: 'entry A is already stopped', status: 'error' });
    expect(await status('A')).toBe('stopped');
  });

  it('PUT start starts a new worker; starting again is a 409', async () => {
    const t0 = Date.now();
    const first = await pidOf('A');
    expect((await h.call('PUT', `${API}/entries/A/stop`)).status).toBe(200);
    await until(`worker ${first} to exit`, () => !alive(first));

    const res = await h.call('PUT', `${API}/entries/A/start`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ name: 'A', status: 'ok', time: nowish(t0) });
    expect(await status('A')).toBe('active');
    const second = await pidOf('A');
    expect(second).not.toBe(first);
    expect(alive(second)).toBe(true);

    const again = await h.call('PUT', `${API}/entries/A/start`);
    expect(again.status).toBe(409);
    expect(again.body).toEqual({ reason: 'entry A is already running', status: 'error' });
    expect(await pidOf('A')).toBe(second);
  });

  it('PUT restart replaces the worker of an active entry; a stopped one is a 409', async () => {
    const t0 = Date.now();
    const first = await pidOf('A');

    const res = await h.call('PUT', `${API}/entries/A/restart`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ name: 'A', status: 'ok', time: nowish(t0) });
    expect(await status('A')).toBe('active');
    const second = await pidOf('A');
    expect(second).not.toBe(first);
    expect(alive(second)).toBe(true);
    await until(`old worker ${first} to exit`, () => !alive(first));

    expect((await h.call('PUT', `${API}/entries/A/stop`)).status).toBe(200);
    const stopped = await h.call('PUT', `${API}/entries/A/restart`);
    expect(stopped.status).toBe(409);
    expect(stopped.body).toEqual({ reason: 'entry A is not running', status: 'error' });
    expect(await status('A')).toBe('stopped');
  });

  it.each(['stop', 'start', 'restart'])('PUT %s of an unknown entry is a 404', async (control) => {
    const res = await h.call('PUT', `${API}/entries/C/${control}`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ reason: 'entry C not found', status: 'error' });
  });

  it('a stopped entry catches up when started', async () => {
    expect((await h.call('PUT', `${API}/entries/B/stop`)).status).toBe(200);
    const pdf = Buffer.from('%PDF-1.4 backed up\n');
    await h.write('A', 'backedup/x.pdf', pdf);
    // The catalogue knows the file and that B should have it; B, stopped, does not.
    await h.filesSettle([file('backedup/x.pdf', pdf.length, ['A', 'B'], ['A'])]);
    // A later change in A is seen too: the daemon is busy, only B is paused.
    await h.write('A', 'later.txt', 'later');
    await h.filesSettle([file('backedup/x.pdf', pdf.length, ['A', 'B'], ['A']), file('later.txt', 5, ['A'])]);
    expect(fs.existsSync(path.join(h.dir, 'B', 'backedup/x.pdf'))).toBe(false);

    expect((await h.call('PUT', `${API}/entries/B/start`)).status).toBe(200);
    await until('x.pdf to reach B', () => fs.existsSync(path.join(h.dir, 'B', 'backedup/x.pdf')));
    await h.filesSettle([file('backedup/x.pdf', pdf.length, ['A', 'B']), file('later.txt', 5, ['A'])]);
    expect(fs.readFileSync(path.join(h.dir, 'B', 'backedup/x.pdf'))).toEqual(pdf);
  });
});
