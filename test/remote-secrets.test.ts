import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { api, startDaemon, until, daemonHarness, type RunningDaemon } from './helpers.js';
import { SseStream } from './sse.js';
import { hasS3rver, hasSshd, s3Storage, sftpStorage, startS3rver, startSshd, S3RVER_KEY, type S3Server, type SshServer } from './servers.js';

/**
 * Secrets never shown: given by reference (password_env, key_file, secret_access_key_env) or
 * inline (password, secret_access_key), no value of theirs appears in GET /entries, in any
 * response the dashboard reads, in the logs or in the event stream. Inline ones still work, are
 * shown as "***", and the start warns about them.
 */

const harness = daemonHarness('ferry-remote-secrets-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

let ssh: SshServer;
let s3: S3Server;
beforeAll(async () => {
  if (hasSshd) ssh = await startSshd();
  if (hasS3rver) s3 = await startS3rver();
}, 30_000);
afterAll(async () => {
  await ssh?.stop();
  await s3?.stop();
});

describe.runIf(hasSshd && hasS3rver)('secrets', () => {
  it('never appear in the API, the dashboard’s data, the logs or the event stream; inline ones are masked and warned about', async () => {
    const secrets = {
      sftpPasswordByRef: `sftp-pass-ref-${randomBytes(8).toString('hex')}`,
      sftpPasswordInline: `sftp-pass-inline-${randomBytes(8).toString('hex')}`,
      s3SecretByRef: `s3-secret-ref-${randomBytes(8).toString('hex')}`,
      s3SecretInline: `s3-secret-inline-${randomBytes(8).toString('hex')}`,
    };
    // The daemon (and its workers) inherit the test's environment.
    process.env.FERRY_TEST_SFTP_PASSWORD = secrets.sftpPasswordByRef;
    process.env.FERRY_TEST_S3_SECRET_REF = secrets.s3SecretByRef;
    process.env.FERRY_TEST_S3_ID_REF = S3RVER_KEY;
    // The private key's body, line by line: none of it may show either.
    const keyLines = fs
      .readFileSync(ssh.keyFile, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----'));

    const byKey = await sftpStorage(ssh, 'by-key');
    const s3ByRef = await s3Storage(s3, 'by-ref', { secret_access_key_env: 'FERRY_TEST_S3_SECRET_REF', access_key_id_env: 'FERRY_TEST_S3_ID_REF' });
    const s3Inline = await s3Storage(s3, 'inline');
    const { access_key_id_env: _i, secret_access_key_env: _s, ...s3InlineOptions } = s3Inline.options;
    const { key_file: _k, ...sftpPlain } = byKey.options;
    await fsp.mkdir(path.join(ssh.dir, 'by-password'));
    await fsp.mkdir(path.join(ssh.dir, 'inline-password'));
    await fsp.mkdir(path.join(dir, 'A'));
    const entries = {
      A: { driver: 'local_storage', options: { root: 'A' } },
      K: { driver: 'sftp', options: byKey.options },
      // Root has no password here: these two fail to log in, which must not show the password either.
      P: { driver: 'sftp', options: { ...sftpPlain, root: path.join(ssh.dir, 'by-password'), password_env: 'FERRY_TEST_SFTP_PASSWORD' } },
      Q: { driver: 'sftp', options: { ...sftpPlain, root: path.join(ssh.dir, 'inline-password'), password: secrets.sftpPasswordInline } },
      R: { driver: 's3', options: s3ByRef.options },
      S: { driver: 's3', options: { ...s3InlineOptions, access_key_id: S3RVER_KEY, secret_access_key: secrets.s3SecretInline } },
    };
    const file = path.join(dir, 'setup.json');
    await fsp.writeFile(file, JSON.stringify({ entries, rules: [{ match: { path: '/' }, sync: Object.keys(entries) }] }, null, 2));
    const d = await startDaemon(file);
    daemons.push(d);
    const events = await SseStream.open(`${d.api}/events`);
    try {
      // Work for every part of the system to talk about: copies, progress, a failing entry.
      await fsp.writeFile(path.join(dir, 'A/doc.txt'), 'shared');
      await fsp.writeFile(path.join(dir, 'A/big.bin'), randomBytes(12 << 20));
      await until('the files in K, R and S', async () =>
        (await byKey.read('big.bin'))?.length === 12 << 20 && (await s3ByRef.read('big.bin')) !== null && (await s3Inline.read('doc.txt')) !== null,
      30_000);
      await until('P and Q say why they cannot log in', async () => {
        const [p, q] = await Promise.all([api(d.api, 'GET', '/entries/P/status'), api(d.api, 'GET', '/entries/Q/status')]);
        return p.body.reason?.includes('authentication failed') && q.body.reason?.includes('authentication failed');
      }, 20_000);

      // GET /entries shows references as written, and inline secrets masked.
      const listed = (await api(d.api, 'GET', '/entries')).body.entries as { name: string; options: Record<string, unknown> }[];
      const byName = new Map(listed.map((e) => [e.name, e.options]));
      expect(byName.get('P')).toMatchObject({ password_env: 'FERRY_TEST_SFTP_PASSWORD' });
      expect(byName.get('Q')).toMatchObject({ password: '***' });
      expect(byName.get('R')).toMatchObject({ secret_access_key_env: 'FERRY_TEST_S3_SECRET_REF' });
      expect(byName.get('S')).toMatchObject({ secret_access_key: '***', access_key_id: S3RVER_KEY });
      expect((await api(d.api, 'GET', '/entries/Q')).body.options.password).toBe('***');
      // root_path is a local folder's: a remote entry has none.
      expect((await api(d.api, 'GET', '/entries/A')).body.root_path).toBe(path.join(dir, 'A'));
      expect((await api(d.api, 'GET', '/entries/K')).body).not.toHaveProperty('root_path');

      // Every response the dashboard reads, and the rest of the API.
      const texts: string[] = [JSON.stringify(listed)];
      const routes = ['/files?limit=1000', '/transfers', '/rules', '/rules/diff', '/conflicts', '/debug/machines', '/openapi.json'];
      for (const name of Object.keys(entries)) routes.push(`/entries/${name}`, `/entries/${name}/status`, `/entries/${name}/stats`);
      for (const route of routes) texts.push(await (await fetch(d.api + route)).text());
      texts.push(await (await fetch(`${d.url}/metrics`)).text());
      texts.push(await (await fetch(`${d.url}/`)).text());
      await until('events of the copies', () => events.events.some((e) => e.data?.kind === 'transferred'));
      texts.push(JSON.stringify(events.events));

      // The start warned about the inline ones, naming the option, never the value.
      const warnings = d.logs.filter((l) => String(l.msg).includes('inline'));
      expect(warnings.map((l) => `${l.entry}: ${l.msg}`).sort()).toEqual([
        'Q: the setup gives password inline; it works, but name an environment variable holding it instead (password_env)',
        'S: the setup gives secret_access_key inline; it works, but name an environment variable holding it instead (secret_access_key_env)',
      ]);
      texts.push(d.logs.map((l) => JSON.stringify(l)).join('\n'), d.stderr());

      const all = texts.join('\n');
      for (const [what, value] of Object.entries(secrets)) expect(all.includes(value), what).toBe(false);
      for (const line of keyLines) expect(all.includes(line), 'a line of the private key').toBe(false);
    } finally {
      await events.close();
    }
  }, 90_000);
});
