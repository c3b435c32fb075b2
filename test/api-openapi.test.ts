import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { Daemon } from '../src/daemon.js';
import { ferryApp } from '../src/api/app.js';
import { AJV_OPTIONS } from '../src/api/server.js';
import { fidOf } from '../src/paths.js';
import { REPO, SPEC_RULES, tempDir, until, writeSetup, writeWhole } from './helpers.js';

/**
 * GET /api/v1.0/openapi.json as served by real daemons (in-process, one without a token and one
 * with): its shape, Redocly's recommended lint, and the types openapi-typescript generates from
 * it checked by tsc against real answers of every route.
 */

const P = '/api/v1.0';
const BIN = path.join(REPO, 'node_modules/.bin');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

interface Recorded {
  path: string;
  method: string;
  status: number;
  media: string;
  body: unknown;
}

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

let dir: string;
let plain: Daemon;
let guarded: Daemon;
let doc: Doc;
let guardedDoc: Doc;
const TOKEN = 's3cret-token';

const inject = async (daemon: Daemon, method: 'GET' | 'PUT', url: string, options: { payload?: string; headers?: Record<string, string> } = {}) => {
  const res = await daemon.app.inject({ method, url, headers: { accept: 'application/json', ...options.headers }, payload: options.payload });
  return { status: res.statusCode, body: res.json(), media: String(res.headers['content-type']).split(';')[0]! };
};

beforeAll(async () => {
  dir = await tempDir('ferry-openapi-');
  // A file where B needs a folder: B's copy of backedup/r.pdf and A's copy of "backedup" keep
  // failing, so failing jobs, reasons and waiting transfers are real. A conflict copy too.
  await fsp.mkdir(path.join(dir, 'A/backedup'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'B'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'A/backedup/r.pdf'), '%PDF-1.7 r\n');
  await fsp.writeFile(path.join(dir, 'B/backedup'), 'plain\n');
  await fsp.writeFile(path.join(dir, 'A/hello.sync-conflict-20260101-120000-B.txt'), 'theirs\n');
  const setupFile = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: SPEC_RULES });
  const logger = pino({ level: 'silent' });
  plain = await Daemon.start({ setupFile, port: 0, host: '127.0.0.1', logger });
  const other = path.join(dir, 'guarded');
  await fsp.mkdir(other);
  const guardedSetup = await writeSetup(other, { entries: { A: 'A', B: 'B' }, rules: SPEC_RULES });
  guarded = await Daemon.start({ setupFile: guardedSetup, port: 0, host: '127.0.0.1', logger, token: TOKEN });
  doc = (await inject(plain, 'GET', `${P}/openapi.json`)).body;
  guardedDoc = (await inject(guarded, 'GET', `${P}/openapi.json`, { headers: { authorization: `Bearer ${TOKEN}` } })).body;
});

afterAll(async () => {
  await plain?.stop();
  await guarded?.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

const OPERATIONS: Record<string, [string, string[]]> = {
  'get /files': ['listFiles', ['200', '400', '404']],
  'get /files/{fid}/metadata': ['getFileMetadata', ['200', '404']],
  'get /entries': ['listEntries', ['200']],
  'get /entries/{name}': ['getEntry', ['200', '404']],
  'get /entries/{name}/status': ['getEntryStatus', ['200', '404']],
  'get /entries/{name}/stats': ['getEntryStats', ['200', '404', '409']],
  'put /entries/{name}/start': ['startEntry', ['200', '400', '404', '409', '413', '415', '503']],
  'put /entries/{name}/stop': ['stopEntry', ['200', '400', '404', '409', '413', '415', '503']],
  'put /entries/{name}/restart': ['restartEntry', ['200', '400', '404', '409', '413', '415', '503']],
  'put /entries/{name}/rescan': ['rescanEntry', ['200', '400', '404', '409', '413', '415', '503']],
  'get /rules': ['getRules', ['200']],
  'put /rules': ['putRules', ['200', '400', '409', '413', '415']],
  'put /rules/reload': ['reloadRules', ['200', '400', '409', '413', '415', '500']],
  'get /rules/diff': ['diffRules', ['200']],
  'get /openapi.json': ['getOpenApi', ['200']],
  'get /debug/machines': ['getMachines', ['200']],
  'get /transfers': ['getTransfers', ['200']],
  'get /events': ['streamEvents', ['200', '400']],
  'get /conflicts': ['listConflicts', ['200']],
  'get /files/{fid}/versions': ['listFileVersions', ['200', '404']],
  'put /files/{fid}/versions/{id}/restore': ['restoreFileVersion', ['200', '400', '404', '409', '413', '415', '503']],
  'get /trash': ['listTrash', ['200', '400']],
};

const operations = (d: Doc) =>
  Object.entries(d.paths as Record<string, Record<string, Doc>>).flatMap(([p, item]) =>
    Object.entries(item).map(([method, op]) => ({ key: `${method} ${p.slice(P.length)}`, path: p, method, op })),
  );

describe('GET /api/v1.0/openapi.json', () => {
  it("every route's request schemas pass ajv's meta-schema check, which the daemon's server leaves out", async () => {
    expect(AJV_OPTIONS.validateSchema).toBe(false);
    const checked = async (extra?: (app: FastifyInstance) => void) => {
      // The whole app on a server of its own, whose ajv checks each schema as it compiles it.
      const app = Fastify({ ajv: { customOptions: { ...AJV_OPTIONS, validateSchema: true } } });
      const compiled: string[] = [];
      app.addHook('onRoute', (route) => {
        const s = (route.schema ?? {}) as Record<string, unknown>;
        for (const part of ['params', 'querystring', 'body', 'headers']) if (s[part]) compiled.push(`${route.method} ${route.url} ${part}`);
      });
      await app.register(ferryApp, {
        system: plain.root.system,
        entries: new Map(plain.setup.entries.map((e) => [e.name, e])),
        store: plain.store,
        events: plain.events,
        board: plain.board,
      });
      extra?.(app);
      try {
        await app.ready();
      } finally {
        await app.close();
      }
      return compiled;
    };
    const compiled = await checked();
    expect(compiled.length).toBeGreaterThan(10);
    expect(compiled).toContain('GET /api/v1.0/files querystring');
    // The check is on: a schema that is not JSON Schema fails it.
    await expect(
      checked((app) => app.get('/broken', { schema: { querystring: { type: 'object', properties: { n: { type: 'integr' } } } } }, async () => ({}))),
    ).rejects.toThrow(/schema is invalid/);
  });

  it('is a valid OpenAPI 3.0 document: every route, its operationId, and every answer it can give', async () => {
    expect(doc.openapi).toBe('3.0.3');
    const result = await new Validator().validate(structuredClone(doc));
    expect(result.errors ?? null, JSON.stringify(result.errors, null, 2)).toBeNull();

    const { license } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { license: string };
    expect(doc.info.license).toEqual({ name: license, url: `https://spdx.org/licenses/${license}.html` });

    const found = Object.fromEntries(operations(doc).map(({ key, op }) => [key, [op.operationId, Object.keys(op.responses)]]));
    expect(found).toEqual(OPERATIONS);
    for (const { key, op } of operations(doc)) {
      expect(op.summary, key).toEqual(expect.any(String));
      for (const [code, response] of Object.entries(op.responses as Record<string, Doc>)) {
        expect(response.description, `${key} ${code}`).toEqual(expect.any(String));
        // Every error in the one error format.
        if (Number(code) >= 400) expect(response.content, `${key} ${code}`).toEqual({ 'application/json': { schema: { $ref: '#/components/schemas/Error' } } });
      }
      if (key.includes('{name}')) expect(op.parameters).toContainEqual(expect.objectContaining({ name: 'name', in: 'path', required: true }));
    }
    expect(new Set(operations(doc).map(({ op }) => op.operationId)).size).toBe(Object.keys(OPERATIONS).length);
  });

  it('names its schemas under components and reuses them by $ref; enums where the values are known', () => {
    const schemas = doc.components.schemas as Record<string, Doc>;
    for (const name of ['File', 'ListedFile', 'Files', 'Entry', 'Entries', 'EntryStatus', 'EntryAction', 'EntryStats', 'ProcessInfo', 'Rule', 'Rules', 'RulesDiff', 'Error', 'Ok', 'Transfers', 'Machines', 'Conflicts', 'Version', 'Versions', 'Restored', 'TrashedFile', 'Trash']) {
      expect(schemas, name).toHaveProperty(name);
    }
    const ok = (p: string, method: string) => doc.paths[P + p][method].responses['200'].content['application/json'].schema;
    expect(ok('/files', 'get')).toEqual({ $ref: '#/components/schemas/Files' });
    expect(schemas.Files.properties.files.items).toEqual({ $ref: '#/components/schemas/ListedFile' });
    expect(ok('/files/{fid}/metadata', 'get')).toEqual({ $ref: '#/components/schemas/File' });
    expect(ok('/entries', 'get')).toEqual({ $ref: '#/components/schemas/Entries' });
    expect(schemas.Entries.properties.entries.items).toEqual({ $ref: '#/components/schemas/Entry' });
    expect(ok('/entries/{name}', 'get')).toEqual({ $ref: '#/components/schemas/Entry' });
    expect(ok('/entries/{name}/status', 'get')).toEqual({ $ref: '#/components/schemas/EntryStatus' });
    expect(ok('/entries/{name}/stats', 'get')).toEqual({ $ref: '#/components/schemas/EntryStats' });
    expect(schemas.EntryStats.properties.info).toEqual({ $ref: '#/components/schemas/ProcessInfo' });
    for (const control of ['start', 'stop', 'restart', 'rescan']) expect(ok(`/entries/{name}/${control}`, 'put')).toEqual({ $ref: '#/components/schemas/EntryAction' });
    expect(ok('/rules', 'get')).toEqual({ $ref: '#/components/schemas/Rules' });
    expect(doc.paths[`${P}/rules`].put.requestBody).toEqual({ required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Rules' } } } });
    expect(schemas.Rules.properties.rules.items).toEqual({ $ref: '#/components/schemas/Rule' });
    expect(ok('/rules', 'put')).toEqual({ $ref: '#/components/schemas/Ok' });
    expect(ok('/rules/diff', 'get')).toEqual({ $ref: '#/components/schemas/RulesDiff' });
    expect(ok('/transfers', 'get')).toEqual({ $ref: '#/components/schemas/Transfers' });
    expect(ok('/debug/machines', 'get')).toEqual({ $ref: '#/components/schemas/Machines' });
    expect(schemas.Machines.properties.actors.items).toEqual({
      oneOf: [{ $ref: '#/components/schemas/RulesActor' }, { $ref: '#/components/schemas/EntryActor' }],
    });
    expect(ok('/conflicts', 'get')).toEqual({ $ref: '#/components/schemas/Conflicts' });
    expect(ok('/files/{fid}/versions', 'get')).toEqual({ $ref: '#/components/schemas/Versions' });
    expect(schemas.Versions.properties.versions.items).toEqual({ $ref: '#/components/schemas/Version' });
    expect(schemas.Version.properties.reason.enum).toEqual(['overwritten', 'deleted']);
    expect(ok('/files/{fid}/versions/{id}/restore', 'put')).toEqual({ $ref: '#/components/schemas/Restored' });
    expect(ok('/trash', 'get')).toEqual({ $ref: '#/components/schemas/Trash' });
    expect(schemas.Trash.properties.files.items).toEqual({ $ref: '#/components/schemas/TrashedFile' });
    expect(schemas.Entry.properties.ignore).toMatchObject({ type: 'array', items: { type: 'string' } });
    // The event stream is not JSON.
    expect(doc.paths[`${P}/events`].get.responses['200'].content).toEqual({ 'text/event-stream': { schema: { type: 'string' } } });

    expect(schemas.EntryStatus.properties.status.enum).toEqual(['active', 'stopped', 'restarting']);
    expect(schemas.EntryAction.properties.status.enum).toEqual(['ok']);
    expect(schemas.EntryStats.properties.status.enum).toEqual(['ok']);
    expect(schemas.Ok.properties.status.enum).toEqual(['ok']);
    expect(schemas.Error.properties.status.enum).toEqual(['error']);
    expect(schemas.RunningTransfer.properties.kind.enum).toEqual(['upload', 'delete', 'move']);
    expect(schemas.RunningTransfer.properties.source).toEqual({ type: 'string', nullable: true, description: expect.any(String) });

    // No schema is written twice: a named one appears in paths only as a $ref.
    expect(JSON.stringify(doc.paths)).not.toContain('"title"');
    // Every $ref resolves.
    for (const ref of JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? []) {
      expect(schemas, ref).toHaveProperty(ref.slice('"$ref":"#/components/schemas/'.length, -1));
    }
    // Every named schema is used.
    const used = new Set((JSON.stringify(doc.paths) + JSON.stringify(schemas)).match(/#\/components\/schemas\/\w+/g));
    for (const name of Object.keys(schemas)) expect(used, name).toContain(`#/components/schemas/${name}`);

    const files = doc.paths[`${P}/files`].get.parameters as Doc[];
    expect(files.map((p: Doc) => [p.name, p.in, p.schema.type])).toEqual([
      ['offset', 'query', 'integer'],
      ['limit', 'query', 'integer'],
      ['pending', 'query', 'string'],
      ['failing', 'query', 'boolean'],
      ['q', 'query', 'string'],
    ]);
    for (const p of files) expect(p.description, p.name).toEqual(expect.any(String));
  });

  it('describes the bearer scheme either way, and requires it (401 on every route) only with a token', async () => {
    const bearer = { type: 'http', scheme: 'bearer', description: expect.any(String) };
    expect(doc.components.securitySchemes).toEqual({ bearer });
    expect(doc.security).toEqual([]);
    for (const { key, op } of operations(doc)) expect(op.responses, key).not.toHaveProperty('401');

    expect(guardedDoc.components.securitySchemes).toEqual({ bearer });
    expect(guardedDoc.security).toEqual([{ bearer: [] }]);
    for (const { key, op } of operations(guardedDoc)) {
      expect(op.responses['401'], key).toEqual({ description: expect.any(String), content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
    }
    // Otherwise the same document.
    const without401 = structuredClone(guardedDoc);
    for (const { path: p, method } of operations(without401)) delete without401.paths[p][method].responses['401'];
    expect({ ...without401, security: [] }).toEqual(doc);
    // And the description itself asks for the token.
    expect((await inject(guarded, 'GET', `${P}/openapi.json`)).status).toBe(401);
  });

  it('passes Redocly\'s recommended lint with no error, with and without a token', async () => {
    const work = await tempDir('ferry-redocly-');
    try {
      for (const [name, d] of [['plain', doc], ['guarded', guardedDoc]] as const) {
        const file = path.join(work, `${name}.json`);
        await fsp.writeFile(file, JSON.stringify(d, null, 2));
        const lint = await run(path.join(BIN, 'redocly'), ['lint', '--extends', 'recommended', '--format', 'json', file], work);
        const report = JSON.parse(lint.out.slice(lint.out.indexOf('{'), lint.out.lastIndexOf('}') + 1)) as {
          totals: { errors: number; warnings: number };
          problems: { ruleId: string; severity: string; message: string }[];
        };
        const errors = report.problems.filter((p) => p.severity === 'error');
        expect(errors, `${name}: ${JSON.stringify(errors, null, 2)}`).toEqual([]);
        expect(report.totals.errors).toBe(0);
        expect(lint.code, lint.out).toBe(0);
      }
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });

  it('its openapi-typescript types accept a real answer of every route, errors included (tsc --noEmit)', async () => {
    const records: Recorded[] = [];
    const record = async (daemon: Daemon, method: 'GET' | 'PUT', url: string, expected: number, options: { payload?: string; headers?: Record<string, string> } = {}) => {
      const res = await inject(daemon, method, url, options);
      expect(res.status, `${method} ${url}: ${JSON.stringify(res.body)}`).toBe(expected);
      const route = url
        .split('?')[0]!
        .slice(P.length)
        .replace(/\/entries\/[^/]+/, '/entries/{name}')
        .replace(/\/files\/[^/]+\/metadata/, '/files/{fid}/metadata')
        .replace(/\/files\/[^/]+\/versions\/[^/]+\/restore/, '/files/{fid}/versions/{id}/restore')
        .replace(/\/files\/[^/]+\/versions$/, '/files/{fid}/versions');
      records.push({ path: route, method: method.toLowerCase(), status: res.status, media: res.media, body: res.body });
      return res.body;
    };

    await until('both copies to fail, and the conflict copy to be listed', async () => {
      const failing = (await inject(plain, 'GET', `${P}/files?failing=true`)).body.files.length;
      const conflicts = (await inject(plain, 'GET', `${P}/conflicts`)).body.conflicts.length;
      return failing === 2 && conflicts === 1;
    });
    const files = (await record(plain, 'GET', `${P}/files`, 200)) as { files: { fid: string }[] };
    await record(plain, 'GET', `${P}/files?failing=true`, 200);
    await record(plain, 'GET', `${P}/files?pending=B&q=PDF`, 200);
    await record(plain, 'GET', `${P}/files?limit=-1`, 400);
    await record(plain, 'GET', `${P}/files?pending=C`, 404);
    await record(plain, 'GET', `${P}/files/${files.files[0]!.fid}/metadata`, 200);
    await record(plain, 'GET', `${P}/files/nope/metadata`, 404);
    await record(plain, 'GET', `${P}/entries`, 200);
    await record(plain, 'GET', `${P}/entries/A`, 200);
    await record(plain, 'GET', `${P}/entries/C`, 404);
    await record(plain, 'GET', `${P}/entries/B/status`, 200);
    await record(plain, 'GET', `${P}/entries/C/status`, 404);
    await record(plain, 'GET', `${P}/entries/A/stats`, 200);
    await record(plain, 'GET', `${P}/transfers`, 200);
    await record(plain, 'GET', `${P}/debug/machines`, 200);
    await record(plain, 'GET', `${P}/conflicts`, 200);
    await record(plain, 'GET', `${P}/openapi.json`, 200);
    // Versions: v.txt made in B reaches A (everything goes to A); edited, then deleted in B, so
    // that A keeps two versions and the file is in the trash; the newest is restored.
    const v = fidOf('v.txt');
    await writeWhole(path.join(dir, 'B/v.txt'), 'one\n');
    // Recorded in A (not only copied) before the edit; the waits allow for a loaded machine.
    await until('v.txt up to date in A', async () => (await inject(plain, 'GET', `${P}/files/${v}/metadata`)).body.uptodate?.includes('A'), 45_000);
    await writeWhole(path.join(dir, 'B/v.txt'), 'two, longer\n');
    await until('A to keep a version of v.txt', async () => (await inject(plain, 'GET', `${P}/files/${v}/versions`)).body.versions?.length === 1, 45_000);
    await fsp.rm(path.join(dir, 'B/v.txt'));
    await until('v.txt in the trash', async () => (await inject(plain, 'GET', `${P}/trash`)).body.files.length === 1, 45_000);
    // The deletion's version is told by A's worker after the file leaves the catalogue.
    await until('A to keep both versions of v.txt', async () => (await inject(plain, 'GET', `${P}/files/${v}/versions`)).body.versions?.length === 2, 45_000);
    const versions = (await record(plain, 'GET', `${P}/files/${v}/versions`, 200)) as { versions: { id: number }[] };
    expect(versions.versions).toHaveLength(2);
    await record(plain, 'GET', `${P}/files/${fidOf('never.txt')}/versions`, 404);
    await record(plain, 'GET', `${P}/trash`, 200);
    await record(plain, 'GET', `${P}/trash?limit=x`, 400);
    await record(plain, 'PUT', `${P}/files/${v}/versions/x/restore`, 400);
    await record(plain, 'PUT', `${P}/files/${v}/versions/999999/restore`, 404);
    await record(plain, 'PUT', `${P}/files/${v}/versions/${versions.versions[0]!.id}/restore`, 200);
    await record(plain, 'PUT', `${P}/entries/A/rescan`, 200);
    await record(plain, 'PUT', `${P}/entries/A/restart`, 200);
    await record(plain, 'PUT', `${P}/entries/A/stop`, 200);
    await record(plain, 'GET', `${P}/entries/A/status`, 200);
    await record(plain, 'GET', `${P}/entries/A/stats`, 409);
    await record(plain, 'PUT', `${P}/entries/A/stop`, 409);
    await record(plain, 'PUT', `${P}/entries/A/restart`, 409);
    await record(plain, 'PUT', `${P}/entries/A/rescan`, 409);
    // A, which keeps the other version, is stopped.
    await record(plain, 'PUT', `${P}/files/${v}/versions/${versions.versions[1]!.id}/restore`, 409);
    await record(plain, 'PUT', `${P}/entries/A/start?force=maybe`, 400);
    await record(plain, 'PUT', `${P}/entries/A/start`, 200);
    await record(plain, 'PUT', `${P}/entries/A/start`, 409);
    await record(plain, 'PUT', `${P}/entries/C/stop`, 404);
    await record(plain, 'PUT', `${P}/entries/A/stop`, 413, { payload: JSON.stringify('x'.repeat(1 << 20)), headers: { 'content-type': 'application/json' } });
    await record(plain, 'PUT', `${P}/entries/A/stop`, 415, { payload: '<stop/>', headers: { 'content-type': 'application/xml' } });
    await record(plain, 'GET', `${P}/rules`, 200);
    await record(plain, 'PUT', `${P}/rules`, 400, { payload: JSON.stringify({ rules: [{ match: { path: 'x' } }] }), headers: { 'content-type': 'application/json' } });
    await record(plain, 'PUT', `${P}/rules`, 200, { payload: JSON.stringify({ rules: [{ match: { path: '/' }, sync: ['A'] }] }), headers: { 'content-type': 'application/json' } });
    await record(plain, 'GET', `${P}/rules/diff`, 200);
    await record(plain, 'PUT', `${P}/rules/reload`, 200);
    await record(plain, 'GET', `${P}/events?since=x`, 400);
    await record(guarded, 'GET', `${P}/entries`, 401);
    await record(guarded, 'PUT', `${P}/entries/A/stop`, 401, { headers: { authorization: 'Bearer wrong' } });
    // The event stream, over a real connection: its first bytes.
    const controller = new AbortController();
    const res = await fetch(`${plain.url}${P}/events?since=0`, { signal: controller.signal });
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    records.push({ path: '/events', method: 'get', status: res.status, media: String(res.headers.get('content-type')).split(';')[0]!, body: first });
    expect(first).toMatch(/^retry: 1000\n/);

    // Every operation of the document has a real successful answer recorded.
    const answered = new Set(records.filter((r) => r.status < 300).map((r) => `${r.method} ${r.path}`));
    for (const key of Object.keys(OPERATIONS)) expect(answered, key).toContain(key);

    const work = await tempDir('ferry-openapi-ts-');
    try {
      await fsp.writeFile(path.join(work, 'package.json'), '{"type": "module"}');
      await fsp.writeFile(path.join(work, 'plain.json'), JSON.stringify(doc));
      await fsp.writeFile(path.join(work, 'guarded.json'), JSON.stringify(guardedDoc));
      for (const name of ['plain', 'guarded']) {
        const gen = await run(path.join(BIN, 'openapi-typescript'), [`${name}.json`, '-o', `${name}.d.ts`], work);
        expect(gen.code, gen.out).toBe(0);
      }
      const type = (r: Recorded) =>
        `${r.status === 401 ? 'Guarded' : 'Plain'}[${JSON.stringify(P + r.path)}][${JSON.stringify(r.method)}]['responses'][${r.status}]['content'][${JSON.stringify(r.media)}]`;
      const lines = records.map((r, i) => `export const r${i}: ${type(r)} = ${JSON.stringify(r.body)};`);
      const header = "import type { paths as Plain } from './plain.js';\nimport type { paths as Guarded } from './guarded.js';\n";
      await fsp.writeFile(path.join(work, 'answers.ts'), header + lines.join('\n') + '\n');
      // The check bites: an unknown status, an extra field, a missing one are refused.
      await fsp.writeFile(
        path.join(work, 'wrong.ts'),
        header +
          `export const w0: Plain['/api/v1.0/entries/{name}/status']['get']['responses'][200]['content']['application/json'] = { name: 'A', status: 'running', time: 1 };\n` +
          `export const w1: Plain['/api/v1.0/files/{fid}/metadata']['get']['responses'][200]['content']['application/json'] = { fid: 'x', filename: 'f', size: 1, owners: [], uptodate: [], extra: 1 };\n` +
          `export const w2: Plain['/api/v1.0/entries/{name}/stats']['get']['responses'][200]['content']['application/json'] = { name: 'A', status: 'ok', time: 1 };\n`,
      );
      const tscArgs = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck'];
      const good = await run(path.join(BIN, 'tsc'), [...tscArgs, 'answers.ts'], work);
      expect(good.out).toBe('');
      expect(good.code).toBe(0);
      const bad = await run(path.join(BIN, 'tsc'), [...tscArgs, 'wrong.ts'], work);
      expect(bad.code).not.toBe(0);
      expect(bad.out).toMatch(/wrong\.ts\(3,\d+\).*"running"/);
      expect(bad.out).toMatch(/wrong\.ts\(4,\d+\).*'extra'/);
      expect(bad.out).toMatch(/wrong\.ts\(5,\d+\).*'info'/);
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });
});
