import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { v5 as uuidv5 } from 'uuid';
import { describe, expect, it } from 'vitest';
import { SPEC_RULES, until } from './helpers.js';
import { API, apiHarness, errorWith } from './api-harness.js';

const fid = (filename: string) => uuidv5(filename, 'bcd336f2-d023-4856-bc92-e79dd24b64d7');
const file = (filename: string, size: number, owners: string[], uptodate = owners) => ({
  fid: fid(filename),
  filename,
  size,
  owners,
  uptodate,
});

const ENTRIES = {
  A: { driver: 'local_storage', options: { root: 'A' } },
  B: { driver: 'local_storage', options: { root: 'B' } },
};

/** Everything to A and B; PDFs kept out of B. */
const NEW_RULES = [
  { match: { path: '/' }, sync: ['A', 'B'] },
  { match: { path: '/private/', mime: ['application/pdf', 'image/*'] }, ban: ['B'] },
];

describe('API 1.0: rules', () => {
  const h = apiHarness();

  const rulesNow = async () => {
    const res = await h.call('GET', `${API}/rules`);
    expect(res.status).toBe(200);
    return res.body;
  };

  it('GET /rules answers the rules of the setup file', async () => {
    expect(await rulesNow()).toEqual({ rules: SPEC_RULES });
  });

  it('PUT /rules stages valid rules without applying them', async () => {
    const setupBefore = await fsp.readFile(h.setupFile, 'utf8');
    await h.write('A', 'toto', 'toto');
    await h.filesSettle([file('toto', 4, ['A'])]);

    const res = await h.call('PUT', `${API}/rules`, { rules: NEW_RULES });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(await rulesNow()).toEqual({ rules: NEW_RULES });

    // Staged, not in force: the setup file and the owners are as before.
    expect(await fsp.readFile(h.setupFile, 'utf8')).toBe(setupBefore);
    expect((await h.call('GET', `${API}/files`)).body).toEqual({ files: [file('toto', 4, ['A'])] });
    // A file that arrives now is owned by the rules in force.
    await h.write('A', 'zeta', 'zeta');
    await h.filesSettle([file('toto', 4, ['A']), file('zeta', 4, ['A'])]);
    expect(fs.existsSync(path.join(h.dir, 'B', 'toto'))).toBe(false);
    expect(fs.existsSync(path.join(h.dir, 'B', 'zeta'))).toBe(false);

    // Staging again replaces what was staged; an empty list is a valid set of rules.
    expect((await h.call('PUT', `${API}/rules`, { rules: [] })).body).toEqual({ status: 'ok' });
    expect(await rulesNow()).toEqual({ rules: [] });
    expect(await fsp.readFile(h.setupFile, 'utf8')).toBe(setupBefore);
  });

  const badBodies: [string, unknown, string[]][] = [
    ['a list', [{ match: { path: '/' }, sync: ['A'] }], ['rules']],
    ['a string', 'rules', ['rules']],
    ['a number', 42, ['rules']],
    ['null', null, ['rules']],
    ['an object without "rules"', { rule: [] }, ['rules']],
    ['an empty object', {}, ['rules']],
    ['rules that are not a list', { rules: { match: { path: '/' }, sync: ['A'] } }, ['rules', 'list']],
    ['rules that are a string', { rules: '/' }, ['rules', 'list']],
    ['a rule that is not an object', { rules: ['/'] }, ['rules[0]']],
    ['a rule without match', { rules: [{ sync: ['A'] }] }, ['rules[0].match']],
    ['a second rule without match', { rules: [{ match: { path: '/' }, sync: ['A'] }, { sync: ['B'] }] }, ['rules[1].match']],
    ['a match without path', { rules: [{ match: {}, sync: ['A'] }] }, ['rules[0].match.path']],
    ['a match.path that is not a string', { rules: [{ match: { path: 1 }, sync: ['A'] }] }, ['rules[0].match.path', 'string']],
    ['a mime that is not a list', { rules: [{ match: { path: '/', mime: 'application/pdf' }, sync: ['A'] }] }, ['rules[0].match.mime', 'list']],
    ['a mime list holding a number', { rules: [{ match: { path: '/', mime: [3] }, sync: ['A'] }] }, ['rules[0].match.mime[0]']],
    ['a sync naming an unknown entry', { rules: [{ match: { path: '/' }, sync: ['A', 'C'] }] }, ['rules[0].sync[1]', 'unknown entry "C"']],
    ['a ban naming an unknown entry', { rules: [{ match: { path: '/' }, ban: ['C'] }] }, ['rules[0].ban[0]', 'unknown entry "C"']],
    ['a sync that is not a list', { rules: [{ match: { path: '/' }, sync: 'A' }] }, ['rules[0].sync', 'list']],
    ['neither sync nor ban', { rules: [{ match: { path: '/' } }] }, ['rules[0]', 'sync', 'ban']],
  ];

  it.each(badBodies)('PUT /rules with %s is a 400 naming the fault, and changes nothing', async (_what, body, fragments) => {
    const setupBefore = await fsp.readFile(h.setupFile, 'utf8');
    const res = await h.call('PUT', `${API}/rules`, JSON.stringify(body), { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(errorWith(...fragments));
    expect(await rulesNow()).toEqual({ rules: SPEC_RULES });
    expect(await fsp.readFile(h.setupFile, 'utf8')).toBe(setupBefore);
  });

  it('a refused PUT /rules leaves the staged rules as they were, not the setup file\'s', async () => {
    expect((await h.call('PUT', `${API}/rules`, { rules: NEW_RULES })).status).toBe(200);
    const res = await h.call('PUT', `${API}/rules`, { rules: [{ match: { path: '/' }, sync: ['C'] }] });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(errorWith('unknown entry "C"'));
    expect(await rulesNow()).toEqual({ rules: NEW_RULES });
  });

  it('PUT /rules with malformed JSON is a 400 in the error format', async () => {
    const res = await h.call('PUT', `${API}/rules`, '{"rules": [', { 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ reason: expect.any(String), status: 'error' });
    expect(await rulesNow()).toEqual({ rules: SPEC_RULES });
  });

  it('PUT /rules with no body is a 400 in the error format', async () => {
    const res = await h.call('PUT', `${API}/rules`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ reason: expect.any(String), status: 'error' });
    const empty = await h.call('PUT', `${API}/rules`, '', { 'content-type': 'application/json' });
    expect(empty.status).toBe(400);
    expect(empty.body).toEqual({ reason: expect.any(String), status: 'error' });
    expect(await rulesNow()).toEqual({ rules: SPEC_RULES });
  });

  it('PUT /rules with a body that is not JSON is refused in the error format', async () => {
    const res = await h.call('PUT', `${API}/rules`, 'rules: []', { 'content-type': 'text/plain' });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body).toEqual({ reason: expect.any(String), status: 'error' });
    expect(await rulesNow()).toEqual({ rules: SPEC_RULES });
  });

  it('PUT /rules with a body over 1 MiB is a 413 in the error format', async () => {
    const body = JSON.stringify({ rules: [{ match: { path: '/' + 'x'.repeat(1 << 20) }, sync: ['A'] }] });
    expect(body.length).toBeGreaterThan(1 << 20);
    const res = await h.call('PUT', `${API}/rules`, body, { 'content-type': 'application/json' });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ reason: expect.any(String), status: 'error' });
    expect(await rulesNow()).toEqual({ rules: SPEC_RULES });
  });

  it('PUT /rules/reload with nothing staged answers ok and leaves the setup file alone', async () => {
    const setupBefore = await fsp.readFile(h.setupFile, 'utf8');
    const res = await h.call('PUT', `${API}/rules/reload`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(await rulesNow()).toEqual({ rules: SPEC_RULES });
    expect(await fsp.readFile(h.setupFile, 'utf8')).toBe(setupBefore);
  });

  it('PUT /rules/reload applies the staged rules, writes them to the setup file, and they survive a restart', async () => {
    await h.write('A', 'toto', 'toto');
    await h.write('A', 'private/secret.pdf', 'secret');
    await h.filesSettle([file('private/secret.pdf', 6, ['A']), file('toto', 4, ['A'])]);

    expect((await h.call('PUT', `${API}/rules`, { rules: NEW_RULES })).status).toBe(200);
    const res = await h.call('PUT', `${API}/rules/reload`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });

    // The existing file only in A now belongs to B too, and gets there.
    await h.filesSettle([file('private/secret.pdf', 6, ['A']), file('toto', 4, ['A', 'B'])]);
    expect(await fsp.readFile(path.join(h.dir, 'B', 'toto'), 'utf8')).toBe('toto');
    // The ban is of PDFs under /private/: B gets the folder (a folder has no MIME type, and the
    // rule '/' gives it to B), never the PDF.
    await until('the folder private in B', () => fs.existsSync(path.join(h.dir, 'B', 'private')));
    expect(fs.readdirSync(path.join(h.dir, 'B', 'private'))).toEqual([]);
    const meta = await h.call('GET', `${API}/files/${fid('toto')}/metadata`);
    expect(meta.body).toEqual(file('toto', 4, ['A', 'B']));

    // The setup file shows the rules in force, the rest of it untouched; no temporary file is left.
    expect(JSON.parse(await fsp.readFile(h.setupFile, 'utf8'))).toEqual({ name: 'test', entries: ENTRIES, rules: NEW_RULES });
    expect((await fsp.readdir(h.dir)).sort()).toEqual(['.ferry', 'A', 'B', 'setup.json']);
    expect(await rulesNow()).toEqual({ rules: NEW_RULES });

    // A new file follows the new rules.
    await h.write('A', 'new.txt', 'new');
    await h.filesSettle([file('new.txt', 3, ['A', 'B']), file('private/secret.pdf', 6, ['A']), file('toto', 4, ['A', 'B'])]);

    // Reloading again changes nothing.
    const setupAfter = await fsp.readFile(h.setupFile, 'utf8');
    expect((await h.call('PUT', `${API}/rules/reload`)).body).toEqual({ status: 'ok' });
    expect(await fsp.readFile(h.setupFile, 'utf8')).toBe(setupAfter);

    await h.restartDaemon();
    expect(await rulesNow()).toEqual({ rules: NEW_RULES });
    await h.filesSettle([file('new.txt', 3, ['A', 'B']), file('private/secret.pdf', 6, ['A']), file('toto', 4, ['A', 'B'])]);
    expect(JSON.parse(await fsp.readFile(h.setupFile, 'utf8'))).toEqual({ name: 'test', entries: ENTRIES, rules: NEW_RULES });
  });

  it('a reload with a ban removes the entry from the owners', async () => {
    await h.write('A', 'docs/a.pdf', 'pdf');
    await h.write('A', 'backedup/b.pdf', 'pdf');
    await h.filesSettle([file('backedup/b.pdf', 3, ['A', 'B']), file('docs/a.pdf', 3, ['A'])]);
    await until('b.pdf in B', () => fs.existsSync(path.join(h.dir, 'B', 'backedup/b.pdf')));

    const rules = [
      { match: { path: '/' }, sync: ['A', 'B'] },
      { match: { path: '/docs' }, ban: ['B'] },
    ];
    expect((await h.call('PUT', `${API}/rules`, { rules })).status).toBe(200);
    expect((await h.call('PUT', `${API}/rules/reload`)).body).toEqual({ status: 'ok' });
    await h.filesSettle([file('backedup/b.pdf', 3, ['A', 'B']), file('docs/a.pdf', 3, ['A'])]);
    expect(await rulesNow()).toEqual({ rules });
  });

  it('staged rules survive a daemon restart without being applied', async () => {
    const setupBefore = await fsp.readFile(h.setupFile, 'utf8');
    expect((await h.call('PUT', `${API}/rules`, { rules: NEW_RULES })).status).toBe(200);
    await h.restartDaemon();
    expect(await rulesNow()).toEqual({ rules: NEW_RULES });
    expect(await fsp.readFile(h.setupFile, 'utf8')).toBe(setupBefore);

    // And they can be applied then.
    expect((await h.call('PUT', `${API}/rules/reload`)).body).toEqual({ status: 'ok' });
    expect(JSON.parse(await fsp.readFile(h.setupFile, 'utf8'))).toEqual({ name: 'test', entries: ENTRIES, rules: NEW_RULES });
  });
});

describe('API 1.0: unknown routes', () => {
  const h = apiHarness();

  it.each([
    ['GET', `${API}/nope`],
    ['GET', '/nope'],
    ['GET', `${API}/files/${fid('toto')}`],
    ['GET', `${API}/entries/A/nope`],
    ['PUT', `${API}/nope`],
    ['DELETE', `${API}/entries/A`],
    ['POST', `${API}/rules`],
  ] as const)('%s %s is a 404 in the error format', async (method, url) => {
    const res = await h.call(method, url);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ reason: expect.any(String), status: 'error' });
    expect(res.body.reason).toContain(url);
  });
});
