/**
 * The remote cases of `npm run bench` (issue 12): local → SFTP and local → S3, Ferry beside
 * `rclone copy` to the same server in the same run, and a no-change poll of 10,000 remote files.
 * The servers are real and on loopback ports: Debian's sshd and s3rver (test/servers.ts).
 *
 *   sftp          local A → SFTP B: 256 × 4 MiB and 5,000 × 1 KiB; target ≤ 1.2× rclone copy
 *   s3            local A → S3 B, the same sets; target ≤ 1.2× rclone copy
 *   remote-poll   a rescan (one poll) of 10,000 files on SFTP and on S3 that did not change; target ≤ 1 s
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startS3rver, startSshd, S3RVER_KEY, hasS3rver, hasSshd, type S3Server, type SshServer } from '../test/servers.js';

export const REMOTE_CASES = ['sftp', 's3', 'remote-poll'] as const;

interface Stats {
  min: number;
  median: number;
  max: number;
  p50: number;
  p95: number;
  p99: number;
  n: number;
}

/** What bench/run.ts lends these cases: its Ferry process, its rows and notes. */
export interface RemoteBench {
  work: string;
  scale: number;
  runs: number;
  cases: Set<string>;
  // The Ferry process of bench/run.ts, as these cases use it (its other fields left opaque).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  startFerry(setupFile: string, dataDir: string, label: string): { running: Promise<string>; stop(): Promise<void> } & any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  copiedAll(ferry: any, count: number, timeoutMs: number): Promise<void>;
  dropCaches(): void;
  have(cmd: string): boolean;
  stats(samples: number[]): Stats;
  note(text: string): void;
  addRow(row: {
    case: string;
    unit: string;
    values: Record<string, Stats | null>;
    ratio?: number;
    target?: string;
    met?: boolean;
    extra?: Record<string, unknown>;
  }): void;
}

const MiB = 1 << 20;

function bytesFor(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(`ferry-bench-remote/${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

const fileName = (set: string, i: number, folders: number) => `${set}-${String(i % folders).padStart(3, '0')}/f${String(i).padStart(6, '0')}.bin`;

async function generate(root: string, set: string, count: number, size: number, folders: number): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  await fsp.mkdir(root, { recursive: true });
  const all = size < MiB ? bytesFor(set, count * size) : null;
  for (let i = 0; i < count; i += 64) {
    await Promise.all(
      Array.from({ length: Math.min(64, count - i) }, async (_, k) => {
        const n = i + k;
        const rel = fileName(set, n, folders);
        await fsp.mkdir(path.join(root, path.dirname(rel)), { recursive: true });
        await fsp.writeFile(path.join(root, rel), all ? all.subarray(n * size, (n + 1) * size) : bytesFor(`${set}/${n}`, size));
        files.set(rel, size);
      }),
    );
  }
  return files;
}

async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`${cmd} exited with ${code}: ${err.slice(-500)}`);
  return (performance.now() - t0) / 1000;
}

/** One kind of remote storage as the bench uses it: Ferry's options, rclone's remote, a check and a cleanup. */
interface Target {
  kind: 'sftp' | 's3';
  options(root: string): Record<string, unknown>;
  rclone(root: string): string[];
  /** What the storage holds under `root`: relative path → size (Ferry's own names left out). */
  list(root: string): Promise<Map<string, number>>;
  /** A few files' bytes, to compare with A's. */
  read(root: string, rel: string): Promise<Buffer>;
  remove(root: string): Promise<void>;
  /** Fills `root` with `count` small files behind Ferry's back (for the poll case). */
  fill(root: string, count: number, folders: number): Promise<void>;
}

function sftpTarget(ssh: SshServer): Target {
  const at = (root: string) => path.join(ssh.dir, root);
  return {
    kind: 'sftp',
    options: (root) => ({
      host: ssh.host,
      port: ssh.port,
      username: ssh.username,
      root: at(root),
      key_file: ssh.keyFile,
      host_key: ssh.fingerprint,
    }),
    rclone: (root) => [
      `:sftp:${at(root)}`,
      '--sftp-host',
      ssh.host,
      '--sftp-port',
      String(ssh.port),
      '--sftp-user',
      ssh.username,
      '--sftp-key-file',
      ssh.keyFile,
      // Ferry checks no hash on the server either (SSH's own integrity, and the size); without
      // this rclone runs md5sum over ssh for every file.
      '--sftp-disable-hashcheck',
    ],
    async list(root) {
      const out = new Map<string, number>();
      const walk = async (dir: string, rel: string) => {
        for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
          const r = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory()) await walk(path.join(dir, e.name), r);
          else if (!e.name.startsWith('.ferry-')) out.set(r, (await fsp.stat(path.join(dir, e.name))).size);
          else if (e.name !== '.ferry-entry') out.set(`LEFTOVER ${r}`, 0);
        }
      };
      await walk(at(root), '');
      return out;
    },
    read: (root, rel) => fsp.readFile(path.join(at(root), rel)),
    remove: (root) => fsp.rm(at(root), { recursive: true, force: true }),
    async fill(root, count, folders) {
      await generate(at(root), 'poll', count, 1024, folders);
    },
  };
}

async function s3Target(s3: S3Server): Promise<Target> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const sdk = await import('@aws-sdk/client-s3');
  const client = new sdk.S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const Bucket = s3.bucket;
  const keys = async (root: string) => {
    const out: { Key: string; Size: number }[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new sdk.ListObjectsV2Command({ Bucket, Prefix: `${root}/`, ContinuationToken: token }));
      for (const o of page.Contents ?? []) out.push({ Key: o.Key!, Size: o.Size ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  };
  process.env.FERRY_BENCH_S3_ID = S3RVER_KEY;
  process.env.FERRY_BENCH_S3_SECRET = S3RVER_KEY;
  return {
    kind: 's3',
    options: (root) => ({
      bucket: Bucket,
      prefix: root,
      endpoint: s3.endpoint,
      force_path_style: true,
      access_key_id_env: 'FERRY_BENCH_S3_ID',
      secret_access_key_env: 'FERRY_BENCH_S3_SECRET',
    }),
    rclone: (root) => [
      `:s3:${Bucket}/${root}`,
      '--s3-provider',
      'Other',
      '--s3-endpoint',
      s3.endpoint,
      '--s3-access-key-id',
      S3RVER_KEY,
      '--s3-secret-access-key',
      S3RVER_KEY,
      '--s3-region',
      'us-east-1',
      '--s3-force-path-style',
      '--s3-no-check-bucket',
    ],
    async list(root) {
      const out = new Map<string, number>();
      for (const o of await keys(root)) {
        const rel = o.Key.slice(root.length + 1);
        if (rel.endsWith('/')) continue; // a folder's marker object
        const name = rel.split('/').pop()!;
        if (!name.startsWith('.ferry-')) out.set(rel, o.Size);
        else if (name !== '.ferry-entry') out.set(`LEFTOVER ${rel}`, 0);
      }
      return out;
    },
    async read(root, rel) {
      const got = await client.send(new sdk.GetObjectCommand({ Bucket, Key: `${root}/${rel}` }));
      return Buffer.from(await got.Body!.transformToByteArray());
    },
    async remove(root) {
      // One at a time: s3rver removes emptied folders after a delete, and concurrent deletes in
      // one folder race there (InternalError).
      for (const o of await keys(root)) await client.send(new sdk.DeleteObjectCommand({ Bucket, Key: o.Key }));
    },
    async fill(root, count, folders) {
      const body = bytesFor('poll', 1024);
      for (let i = 0; i < count; i += 32) {
        await Promise.all(
          Array.from({ length: Math.min(32, count - i) }, (_, k) =>
            client.send(new sdk.PutObjectCommand({ Bucket, Key: `${root}/${fileName('poll', i + k, folders)}`, Body: body, ContentLength: body.length })),
          ),
        );
      }
    },
  };
}

async function check(target: Target, root: string, a: string, expected: Map<string, number>): Promise<void> {
  const got = await target.list(root).catch((err: Error) => {
    throw new Error(`listing: ${err.message}`);
  });
  const problems: string[] = [];
  for (const [rel, size] of expected) if (got.get(rel) !== size) problems.push(`${rel}: ${got.get(rel) ?? 'missing'}`);
  for (const rel of got.keys()) if (!expected.has(rel)) problems.push(`extra ${rel}`);
  // A sample of the files compared byte for byte.
  const names = [...expected.keys()];
  for (let i = 0; i < names.length && problems.length === 0; i += Math.max(1, Math.floor(names.length / 16))) {
    const [x, y] = await Promise.all([
      fsp.readFile(path.join(a, names[i])),
      target.read(root, names[i]).catch((err: Error) => {
        throw new Error(`reading ${names[i]}: ${err.message}`);
      }),
    ]);
    if (!x.equals(y)) problems.push(`${names[i]}: content differs`);
  }
  if (problems.length) throw new Error(`${target.kind} differs from A (${problems.length}): ${problems.slice(0, 5).join('; ')}`);
}

function writeSetup(dir: string, a: string, target: Target, root: string, sync: string[]): string {
  const file = path.join(dir, 'setup.json');
  const entries = { A: { driver: 'local_storage', options: { root: a } }, B: { driver: target.kind, options: target.options(root) } };
  fs.writeFileSync(file, JSON.stringify({ name: 'bench-remote', entries, rules: [{ match: { path: '/' }, sync }] }, null, 2));
  return file;
}

/** Ferry and rclone copy the same set into fresh roots of the same server, run after run. */
async function copyCase(b: RemoteBench, target: Target, set: { name: string; count: number; size: number; folders: number }, rcloneEnv: NodeJS.ProcessEnv | null): Promise<void> {
  const dir = path.join(b.work, `remote-${target.kind}-${set.name}`);
  const a = path.join(dir, 'A');
  const label = `${set.count} × ${set.size >= MiB ? `${set.size / MiB} MiB` : `${set.size / 1024} KiB`}`;
  console.log(`\n[local → ${target.kind}] ${label}, ${b.runs} runs`);
  const expected = await generate(a, set.name, set.count, set.size, set.folders);
  const times: Record<string, number[]> = { ferry: [], 'rclone copy': [] };
  for (let run = 1; run <= b.runs; run++) {
    for (const tool of rcloneEnv ? (['rclone copy', 'ferry'] as const) : (['ferry'] as const)) {
      const root = `bench-${set.name}-${run}-${tool === 'ferry' ? 'ferry' : 'rclone'}`;
      await target.remove(root);
      if (target.kind === 'sftp') await fsp.mkdir(path.join((target.options(root) as { root: string }).root), { recursive: true });
      await fsp.rm(path.join(dir, 'store'), { recursive: true, force: true });
      await fsp.rm(path.join(a, '.ferry-entry'), { force: true });
      b.dropCaches();
      let seconds: number;
      if (tool === 'ferry') {
        const t0 = performance.now();
        const ferry = b.startFerry(writeSetup(dir, a, target, root, ['A', 'B']), path.join(dir, 'store'), `${target.kind}-${set.name}-${run}`);
        try {
          await b.copiedAll(ferry, set.count, Math.max(120_000, set.count * 50));
          seconds = (performance.now() - t0) / 1000;
        } finally {
          await ferry.stop();
        }
      } else {
        seconds = await timed('rclone', ['copy', a, ...target.rclone(root)], rcloneEnv!);
      }
      await check(target, root, a, expected).catch((err: Error) => {
        throw new Error(`checking ${tool}'s copy: ${err.message}`);
      });
      await target.remove(root).catch((err: Error) => {
        throw new Error(`removing ${tool}'s copy: ${err.message}`);
      });
      times[tool].push(seconds);
      console.log(`  run ${run} ${tool.padEnd(11)} ${seconds.toFixed(2)} s`);
    }
  }
  const ferry = b.stats(times.ferry);
  const rclone = times['rclone copy'].length ? b.stats(times['rclone copy']) : null;
  const ratio = rclone ? ferry.median / rclone.median : undefined;
  b.addRow({
    case: `local → ${target.kind} (${label})`,
    unit: 's',
    values: { ferry, 'rclone copy': rclone },
    ratio,
    target: '≤ 1.2× rclone copy',
    met: ratio === undefined ? undefined : ratio <= 1.2,
  });
  await fsp.rm(dir, { recursive: true, force: true });
}

/** A daemon tracking `count` files in B only; timed: PUT /entries/B/rescan (one poll: a listing, a diff, nothing to report). */
async function pollCase(b: RemoteBench, target: Target, count: number): Promise<void> {
  const dir = path.join(b.work, `remote-poll-${target.kind}`);
  const a = path.join(dir, 'A');
  await fsp.mkdir(a, { recursive: true });
  const root = `bench-poll`;
  await target.remove(root);
  console.log(`\n[no-change poll ${target.kind}] ${count} files`);
  const t0 = performance.now();
  await target.fill(root, count, Math.max(1, Math.round(count / 100)));
  console.log(`  filled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const ferry = b.startFerry(writeSetup(dir, a, target, root, ['B']), path.join(dir, 'store'), `poll-${target.kind}`);
  const samples: number[] = [];
  try {
    const api = await ferry.running;
    // The start-up scan has recorded every file once the listing holds them all.
    const deadline = Date.now() + 300_000;
    for (;;) {
      const res = await fetch(`${api}/files?limit=1&offset=${count - 1}`);
      const body = (await res.json()) as { files: unknown[] };
      if (body.files.length === 1) break;
      if (Date.now() > deadline) throw new Error('the start-up scan did not record every file');
      await new Promise((r) => setTimeout(r, 100));
    }
    const runs = Math.max(5, b.runs);
    for (let i = 0; i < runs; i++) {
      const s = performance.now();
      const res = await fetch(`${api}/entries/B/rescan`, { method: 'PUT' });
      if (!res.ok) throw new Error(`rescan: ${res.status} ${await res.text()}`);
      samples.push((performance.now() - s) / 1000);
    }
    const files = (await (await fetch(`${api}/transfers`)).json()) as { entries: { name: string; queued: number }[] };
    if (files.entries.some((e) => e.queued > 0)) throw new Error('a no-change poll queued jobs');
  } finally {
    await ferry.stop();
    await target.remove(root);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  const s = b.stats(samples);
  console.log(`  poll: median ${s.median.toFixed(3)} s (${s.min.toFixed(3)}–${s.max.toFixed(3)})`);
  b.addRow({ case: `no-change poll ${target.kind} (${count} remote files)`, unit: 's', values: { ferry: s }, target: '≤ 1 s', met: s.median <= 1 });
}

export async function remoteCases(b: RemoteBench): Promise<void> {
  const wanted = REMOTE_CASES.filter((c) => b.cases.has(c));
  if (wanted.length === 0) return;
  const scaled = (n: number, min: number) => Math.max(min, Math.round(n * b.scale));
  const sets = [
    { name: 'large', count: scaled(256, 2), size: 4 * MiB, folders: 4 },
    { name: 'small', count: scaled(5000, 10), size: 1024, folders: scaled(50, 1) },
  ];
  // rclone without a config, and without AWS_CA_BUNDLE (its S3 backend then refuses a plain-http endpoint).
  const { AWS_CA_BUNDLE: _bundle, ...env } = process.env;
  const rcloneEnv = b.have('rclone') ? { ...env, RCLONE_CONFIG: path.join(b.work, 'rclone-remote.conf') } : null;
  if (rcloneEnv) fs.writeFileSync(rcloneEnv.RCLONE_CONFIG as string, '');
  else b.note('rclone is not installed: the remote copies run without it (Debian package rclone)');
  let ssh: SshServer | null = null;
  let s3: S3Server | null = null;
  try {
    const targets: Target[] = [];
    if (wanted.includes('sftp') || wanted.includes('remote-poll')) {
      if (hasSshd) targets.push(sftpTarget((ssh = await startSshd())));
      else b.note('sshd is missing: the SFTP cases are skipped (Debian package openssh-server)');
    }
    if (wanted.includes('s3') || wanted.includes('remote-poll')) {
      if (hasS3rver) targets.push(await s3Target((s3 = await startS3rver('bench'))));
      else b.note('s3rver is missing: the S3 cases are skipped (npm ci installs it)');
    }
    for (const target of targets) {
      if (!b.cases.has(target.kind)) continue;
      for (const set of sets) await copyCase(b, target, set, rcloneEnv);
    }
    if (b.cases.has('remote-poll')) for (const target of targets) await pollCase(b, target, scaled(10_000, 100));
  } finally {
    await ssh?.stop();
    await s3?.stop();
  }
}
