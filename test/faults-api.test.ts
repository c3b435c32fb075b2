import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, startDaemon } from './helpers.js';
import { childrenOf, daemonIn, faultHarness, ferry, running, setupIn, status, until, workerPid } from './faults-helpers.js';
import { spawn } from 'node:child_process';

/**
 * Issue 5, the API under stress and under attack: storms of concurrent control requests on one
 * entry, and who may call the API at all (token, body size, CORS, the address it binds).
 */

const ctx = faultHarness('ferry-faults-api-');
const at = (entry: string, rel: string) => path.join(ctx.dir, entry, rel);

type Control = 'start' | 'stop' | 'restart';

/** Sends every request at once; each answer's status and body. */
async function storm(base: string, entry: string, controls: string[]) {
  return Promise.all(
    controls.map(async (c) => {
      const res = await fetch(`${base}/entries/${entry}/${c}`, { method: 'PUT' });
      return { control: c, status: res.status, body: (await res.json()) as { status: string; reason?: string } };
    }),
  );
}

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('control storms', () => {
  it('50 concurrent start/stop/restart requests on one entry, three times: each answered 200 or 409, and one worker or none in the end', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']));
    const daemonPid = d.process.pid!;
    const aPid = (await until('A running', () => workerPid(d, 'A')))!;
    const refusals: Record<Control, RegExp> = {
      start: /^entry B (is already running|could not start: .*)$/,
      stop: /^entry B is already stopped$/,
      restart: /^entry B (is not running|could not start: .*)$/,
    };
    for (let round = 0; round < 3; round++) {
      const controls = shuffled(
        Array.from({ length: 50 }, (_, i) => (['start', 'stop', 'restart', 'start?force=true'] as const)[(i + round) % 4]),
      );
      const answers = await storm(d.api, 'B', controls);
      for (const a of answers) {
        expect([200, 409], `${a.control} → ${a.status} ${JSON.stringify(a.body)}`).toContain(a.status);
        if (a.status === 409) {
          expect(a.body.status).toBe('error');
          expect(a.body.reason).toMatch(refusals[a.control.split('?')[0] as Control]);
        } else {
          expect(a.body.status).toBe('ok');
        }
      }
      expect(answers.some((a) => a.status === 200)).toBe(true);

      // Settled: active with exactly its one worker, or stopped with none. A's worker untouched.
      const settled = await until(`round ${round}: one consistent state`, async () => {
        const s = await status(d, 'B');
        if (s.status === 'restarting') return null;
        const children = childrenOf(daemonPid);
        if (!children.includes(aPid)) throw new Error(`A's worker ${aPid} is gone: ${children}`);
        const others = children.filter((p) => p !== aPid);
        if (s.status === 'stopped') return others.length === 0 ? { state: 'stopped', others } : null;
        const pid = await workerPid(d, 'B');
        return pid !== null && others.length === 1 && others[0] === pid ? { state: 'active', others } : null;
      }, 30_000);
      expect(['active', 'stopped']).toContain(settled!.state);
      expect(await workerPid(d, 'A')).toBe(aPid);
    }

    // And B works: started if the last storm left it stopped, it syncs.
    if ((await status(d, 'B')).status === 'stopped') {
      expect((await fetch(`${d.api}/entries/B/start`, { method: 'PUT' })).status).toBe(200);
    }
    await fsp.writeFile(at('A', 'after-the-storm.txt'), 'still syncing');
    await until('after-the-storm.txt in B', () => fs.existsSync(at('B', 'after-the-storm.txt')));
    const pid = (await workerPid(d, 'B'))!;
    expect(childrenOf(daemonPid).sort()).toEqual([aPid, pid].sort());
    expect(running(pid)).toBe(true);
    expect(d.logs.filter((l) => l.msg === 'request failed')).toEqual([]);
  });
});

/** `ferry start` expected to refuse: exit code, output, how long it took. */
function startRefused(args: string[], env: Record<string, string | undefined> = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'start', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FERRY_TOKEN: undefined, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferry start did not exit; stdout: ${stdout}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const TOKEN = 'correct horse battery staple';

/** A request with an optional bearer token; status, headers and parsed body. */
async function call(base: string, method: string, route: string, token?: string, init: RequestInit = {}) {
  const res = await fetch(base + route, {
    method,
    ...init,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(init.headers as Record<string, string>) },
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body: body as any };
}

describe('security', () => {
  it('--host 0.0.0.0 without a token exits 2 with a clear message, before listening or touching the store', async () => {
    const file = await setupIn(ctx, ['A']);
    const res = await startRefused(['--setup', file, '--host', '0.0.0.0', '--port', '0']);
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(
      'ferry: --host 0.0.0.0 is reachable from other machines: give a token (--token or FERRY_TOKEN) that every request must present\n',
    );
    expect(res.stdout).not.toMatch(/listening|ferry is running/);
    expect(fs.existsSync(path.join(ctx.dir, '.ferry')), 'no store was opened').toBe(false);
    // An empty FERRY_TOKEN is no token.
    const empty = await startRefused(['--setup', file, '--host', '0.0.0.0', '--port', '0'], { FERRY_TOKEN: '' });
    expect(empty.code).toBe(2);
  });

  for (const how of ['--token', 'FERRY_TOKEN'] as const) {
    it(`with ${how}: every request without the right bearer token gets 401 in the error format and changes nothing; the right one passes`, async () => {
      const file = await setupIn(ctx, ['A', 'B']);
      let d;
      if (how === '--token') {
        d = await daemonIn(ctx, file, ['--token', TOKEN]);
      } else {
        const saved = process.env.FERRY_TOKEN;
        process.env.FERRY_TOKEN = TOKEN;
        try {
          d = await startDaemon(file);
          ctx.daemons.push(d);
        } finally {
          if (saved === undefined) delete process.env.FERRY_TOKEN;
          else process.env.FERRY_TOKEN = saved;
        }
      }
      const routes: [string, string][] = [
        ['GET', '/api/v1.0/entries'],
        ['GET', '/api/v1.0/entries/A/status'],
        ['GET', '/api/v1.0/entries/A/stats'],
        ['GET', '/api/v1.0/files'],
        ['GET', '/api/v1.0/rules'],
        ['GET', '/api/v1.0/conflicts'],
        ['GET', '/api/v1.0/openapi.json'],
        ['GET', '/api/v1.0/events'],
        ['GET', '/api/v1.0/no-such-route'],
        ['GET', '/metrics'],
        ['PUT', '/api/v1.0/entries/A/stop'],
        ['PUT', '/api/v1.0/rules/reload'],
      ];
      for (const [method, route] of routes) {
        for (const [token, reason] of [
          [undefined, 'missing bearer token (Authorization: Bearer TOKEN)'],
          ['wrong', 'wrong bearer token'],
          [`${TOKEN}x`, 'wrong bearer token'],
          ['', 'missing bearer token (Authorization: Bearer TOKEN)'],
        ] as const) {
          const res = await call(d.url, method, route, token);
          expect(res.status, `${method} ${route} with ${JSON.stringify(token)}`).toBe(401);
          expect(res.body).toEqual({ reason, status: 'error' });
          expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ferry"');
        }
      }
      // The refused stop changed nothing.
      const ok = await call(d.url, 'GET', '/api/v1.0/entries/A/status', TOKEN);
      expect(ok.status).toBe(200);
      expect(ok.body.status).toBe('active');
      for (const route of ['/api/v1.0/entries', '/api/v1.0/files', '/api/v1.0/entries/A/stats', '/metrics']) {
        expect((await call(d.url, 'GET', route, TOKEN)).status, route).toBe(200);
      }
      expect((await call(d.url, 'PUT', '/api/v1.0/entries/A/stop', TOKEN)).status).toBe(200);
      expect((await call(d.url, 'PUT', '/api/v1.0/entries/A/start', TOKEN)).status).toBe(200);
      // The dashboard's page holds no data: it loads, then asks for the token.
      expect((await call(d.url, 'GET', '/')).status).toBe(200);

      // The CLI: --token, or FERRY_TOKEN; without either, the daemon's refusal, exit 1.
      const withFlag = await ferry(['entries', '--api', d.url, '--token', TOKEN, '--json'], { FERRY_TOKEN: undefined });
      expect(withFlag.code, withFlag.stderr).toBe(0);
      expect(JSON.parse(withFlag.stdout).entries.map((e: { name: string }) => e.name)).toEqual(['A', 'B']);
      const withEnv = await ferry(['entries', 'status', 'B', '--api', d.url], { FERRY_TOKEN: TOKEN });
      expect(withEnv.code, withEnv.stderr).toBe(0);
      const without = await ferry(['entries', '--api', d.url], { FERRY_TOKEN: undefined });
      expect(without.code).toBe(1);
      expect(without.stderr).toBe('ferry: missing bearer token (Authorization: Bearer TOKEN)\n');
      const wrong = await ferry(['entries', 'stop', 'B', '--api', d.url, '--token', 'nope'], { FERRY_TOKEN: undefined });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toBe('ferry: wrong bearer token\n');
      expect((await call(d.url, 'GET', '/api/v1.0/entries/B/status', TOKEN)).body.status).toBe('active');
    });
  }

  it('request bodies over 1 MiB get 413 in the error format; the rules are unchanged', async () => {
    const d = await daemonIn(ctx, await setupIn(ctx, ['A', 'B']), ['--token', TOKEN]);
    const before = await call(d.url, 'GET', '/api/v1.0/rules', TOKEN);
    const rules = Array.from({ length: 30_000 }, (_, i) => ({ match: { path: `/${'x'.repeat(20)}${i}/` }, sync: ['A'] }));
    const body = JSON.stringify({ rules });
    expect(body.length).toBeGreaterThan(1 << 20);
    const res = await call(d.url, 'PUT', '/api/v1.0/rules', TOKEN, { body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ reason: expect.stringMatching(/body/i), status: 'error' });
    expect((await call(d.url, 'GET', '/api/v1.0/rules', TOKEN)).body).toEqual(before.body);
    // Just under the limit is read (and judged on its content).
    const small = JSON.stringify({ rules: rules.slice(0, 100) });
    expect((await call(d.url, 'PUT', '/api/v1.0/rules', TOKEN, { body: small, headers: { 'content-type': 'application/json' } })).status).toBe(200);
  });

  it('no CORS header unless --cors ORIGIN, and then only that origin; preflights are answered', async () => {
    const file = await setupIn(ctx, ['A']);
    const plain = await daemonIn(ctx, file);
    for (const [method, headers] of [
      ['GET', { origin: 'http://evil.example' }],
      ['OPTIONS', { origin: 'http://evil.example', 'access-control-request-method': 'PUT' }],
    ] as const) {
      const res = await call(plain.url, method, '/api/v1.0/entries', undefined, { headers });
      expect(res.headers.get('access-control-allow-origin'), `${method} without --cors`).toBeNull();
      expect(res.headers.get('access-control-allow-methods')).toBeNull();
    }
    expect(await plain.stop()).toBe(0);

    const ORIGIN = 'http://dashboard.example:8080';
    const d = await daemonIn(ctx, file, ['--cors', ORIGIN, '--token', TOKEN]);
    const mine = await call(d.url, 'GET', '/api/v1.0/entries', TOKEN, { headers: { origin: ORIGIN } });
    expect(mine.status).toBe(200);
    expect(mine.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(mine.headers.get('vary')).toMatch(/Origin/);
    const other = await call(d.url, 'GET', '/api/v1.0/entries', TOKEN, { headers: { origin: 'http://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBe(ORIGIN); // never the caller's own origin
    // A preflight carries no credentials: answered without the token, and says what is allowed.
    const preflight = await call(d.url, 'OPTIONS', '/api/v1.0/entries/A/stop', undefined, {
      headers: { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    expect(preflight.headers.get('access-control-allow-methods')).toMatch(/PUT/);
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toMatch(/authorization/);
    // The 401 of a call without the token still carries the header, so that the page can read why.
    const refused = await call(d.url, 'GET', '/api/v1.0/entries', undefined, { headers: { origin: ORIGIN } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(ORIGIN);
  });
});
