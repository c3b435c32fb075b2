/**
 * `npm run bench`: Ferry against cp, rsync, rclone and unison, and the targets of issues 6 and 10.
 *
 * Environment:
 *   FERRY_BENCH_SCALE=0.05   shrink every data set (file counts; sizes stay) for development runs
 *   FERRY_BENCH_RUNS=3       runs of each timed case
 *   FERRY_BENCH_CASES=initial,nochange,latency,flat,api,memory   which cases (api and memory share one setup);
 *                            or name them on the command line: `npm run bench -- api memory`
 *                            `million` (1,000,000 files) is not in the default set: name it to run it
 *                            `sftp`, `s3`, `remote-poll`: local → SFTP / S3 beside rclone copy, a no-change poll (bench/remote.ts)
 *   FERRY_BENCH_PROFILE=DIR  run every daemon (and its workers) with `node --cpu-prof` into DIR
 *   FERRY_BENCH_KEEP=1       keep the temporary folder
 *
 * Every data set is generated deterministically in a temporary folder. Before each timed run the
 * page cache is dropped (when this user may), and each timed copy ends with `sync`. Ferry's time
 * runs from spawning `ferry start` until its log says the last file was copied into B (its
 * worker logs a copy after the rename into place); every Ferry run is then checked byte for byte
 * (the million case: every file's size, and 2,000 files' bytes). The flat case times files
 * written into A while the daemon runs, until they are in B (B polled every 50 ms).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { REMOTE_CASES, remoteCases } from './remote.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(REPO, 'dist/src/cli.js');
const RESULTS = path.join(REPO, 'bench/results');

const SCALE = Number(process.env.FERRY_BENCH_SCALE ?? '1');
const RUNS = Math.max(1, Number(process.env.FERRY_BENCH_RUNS ?? '3'));
/** The cases of a plain `npm run bench`; `million` runs only when asked for. */
const DEFAULT_CASES = ['initial', 'nochange', 'latency', 'flat', 'api', 'memory', ...REMOTE_CASES];
const KNOWN_CASES = [...DEFAULT_CASES, 'million'];
// Cases from the command line (`npm run bench -- api memory`), else FERRY_BENCH_CASES, else the default set.
const caseArgs = process.argv.slice(2).flatMap((a) => a.split(','));
const CASES = new Set(
  (caseArgs.length ? caseArgs : (process.env.FERRY_BENCH_CASES ?? DEFAULT_CASES.join(',')).split(',')).map((s) => s.trim()).filter(Boolean),
);
for (const c of CASES) if (!KNOWN_CASES.includes(c)) throw new Error(`unknown bench case ${c} (known: ${KNOWN_CASES.join(', ')})`);
const PROFILE_DIR = process.env.FERRY_BENCH_PROFILE ? path.resolve(process.env.FERRY_BENCH_PROFILE) : null;
const KEEP = process.env.FERRY_BENCH_KEEP === '1';
if (!(SCALE > 0 && SCALE <= 1)) throw new Error('FERRY_BENCH_SCALE must be in (0, 1]');

const MiB = 1 << 20;
const scaled = (n: number, min = 1) => Math.max(min, Math.round(n * SCALE));
const SETS = {
  large: { count: scaled(256, 2), size: 4 * MiB, folders: 4 },
  small: { count: scaled(20_000, 10), size: 1024, folders: scaled(200) },
  huge: { count: scaled(100_000, 10), size: 16, folders: scaled(1000) },
  /** Written into one folder of A while the daemon runs (bench/write-flat.mjs). */
  flat: { count: scaled(30_000, 60), size: 100, folders: 1 },
};
/** The flat case's window for its arrival rates: the first and the last 5,000 of 30,000 files. */
const FLAT_WINDOW = Math.max(10, Math.round(SETS.flat.count / 6));
const FLAT_POLL_MS = 50;
const FLAT_TIMEOUT_MS = 180_000;
/** The million case: files of 0–64 B (sizes from a seeded generator) in 1,000 folders. */
const MILLION = { count: scaled(1_000_000, 100), maxSize: 64, folders: scaled(1000), seed: 20_240_601, pageRequests: 200, sample: 2000 };
const LATENCY_SAMPLES = Math.max(10, Math.round(50 * Math.max(SCALE, 0.2)));
const API_REQUESTS = 1000;
const AUTOCANNON_SECONDS = SCALE >= 0.5 ? 8 : 3;

const notes: string[] = [];
const note = (text: string) => {
  notes.push(text);
  console.log(`  note: ${text}`);
};

// ---------------------------------------------------------------- helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Milliseconds since the epoch, sub-millisecond, comparable between processes. */
const epoch = () => performance.timeOrigin + performance.now();

function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env ?? process.env, maxBuffer: 64 * MiB });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function have(cmd: string): boolean {
  return sh('sh', ['-c', `command -v ${cmd}`]).code === 0;
}

let cacheDropWorks: boolean | null = null;
/** `sync; echo 3 > /proc/sys/vm/drop_caches`, where this user may. */
function dropCaches(): void {
  spawnSync('sync');
  if (cacheDropWorks === false) return;
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    cacheDropWorks = true;
  } catch (err) {
    cacheDropWorks = false;
    note(`cannot drop the page cache (${(err as NodeJS.ErrnoException).code}): every run is warm-cache`);
  }
}

function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { min: s[0], median: s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2, max: s[s.length - 1], p50: q(0.5), p95: q(0.95), p99: q(0.99), n: s.length };
}

/** Deterministic bytes: AES-128-CTR keystream of a fixed key, one stream per (set, index). */
function bytesFor(set: string, index: number, size: number): Buffer {
  const key = createHash('sha256').update(`ferry-bench/${set}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(index, 0);
  return createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(size));
}

function fileName(set: string, index: number, folders: number): string {
  const folder = index % folders;
  return `${set}-${String(folder).padStart(4, '0')}/f${String(index).padStart(6, '0')}.bin`;
}

async function generate(set: keyof typeof SETS, root: string): Promise<void> {
  const { count, size, folders } = SETS[set];
  const t0 = performance.now();
  await fsp.mkdir(root, { recursive: true });
  for (let f = 0; f < Math.min(folders, count); f++) await fsp.mkdir(path.join(root, path.dirname(fileName(set, f, folders))), { recursive: true });
  if (size >= MiB) {
    for (let i = 0; i < count; i++) await fsp.writeFile(path.join(root, fileName(set, i, folders)), bytesFor(set, i, size));
  } else {
    // One keystream for the whole set, sliced per file; written 64 at a time.
    const all = bytesFor(set, 0, count * size);
    for (let i = 0; i < count; i += 64) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 64); j++) {
        batch.push(fsp.writeFile(path.join(root, fileName(set, j, folders)), all.subarray(j * size, (j + 1) * size)));
      }
      await Promise.all(batch);
    }
  }
  spawnSync('sync');
  console.log(`  generated ${set}: ${count} × ${size >= MiB ? `${size / MiB} MiB` : `${size} B`} in ${Math.min(folders, count)} folders (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

/** mulberry32: a small seeded generator of floats in [0, 1). */
function seeded(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The million set: MILLION.count files of 0–maxSize bytes, sliced from one keystream, written synchronously. */
async function generateMillion(root: string): Promise<void> {
  const { count, maxSize, folders, seed } = MILLION;
  const t0 = performance.now();
  const random = seeded(seed);
  const sizes = new Uint8Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) total += sizes[i] = Math.floor(random() * (maxSize + 1));
  const all = bytesFor('million', 0, total);
  for (let f = 0; f < Math.min(folders, count); f++) fs.mkdirSync(path.join(root, path.dirname(fileName('million', f, folders))), { recursive: true });
  for (let i = 0, at = 0; i < count; at += sizes[i], i++) fs.writeFileSync(path.join(root, fileName('million', i, folders)), all.subarray(at, at + sizes[i]));
  spawnSync('sync');
  console.log(`  generated million: ${count} × 0–${maxSize} B (${(total / MiB).toFixed(1)} MiB) in ${Math.min(folders, count)} folders (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

/**
 * Every regular file under `root` with its size, from one `find` (fast on a million files);
 * Ferry's own names apart, and its temporary or partial files listed as leftovers.
 */
function treeSizes(root: string): { files: Map<string, number>; leftovers: string[] } {
  const r = spawnSync('find', [root, '-mindepth', '1', '-type', 'f', '-printf', '%s\\t%P\\n'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`find ${root}: ${r.status} ${r.stderr}`);
  const files = new Map<string, number>();
  const left: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line) continue;
    const tab = line.indexOf('\t');
    const rel = line.slice(tab + 1);
    const segments = rel.split('/');
    if (segments.some((x) => x.startsWith('.ferry-tmp-') || x.startsWith('.ferry-part-'))) left.push(rel);
    else if (!segments.some((x) => x === '.ferry' || x.startsWith('.ferry-'))) files.set(rel, Number(line.slice(0, tab)));
  }
  return { files, leftovers: left };
}

/** B holds exactly A's `expected` files with their sizes, and `sample` of them (seeded pick) byte for byte. */
async function verifySizesAndSample(a: string, b: string, expected: number, sample: number, seed: number): Promise<void> {
  const ta = treeSizes(a);
  const tb = treeSizes(b);
  if (ta.files.size !== expected) throw new Error(`A holds ${ta.files.size} files, expected ${expected}`);
  const problems: string[] = [];
  for (const [rel, size] of ta.files) {
    const other = tb.files.get(rel);
    if (other === undefined) problems.push(`missing ${rel}`);
    else if (other !== size) problems.push(`${rel}: ${other} bytes, expected ${size}`);
  }
  for (const rel of tb.files.keys()) if (!ta.files.has(rel)) problems.push(`extra ${rel}`);
  if (tb.leftovers.length) problems.push(`${tb.leftovers.length} temporary files left, e.g. ${tb.leftovers[0]}`);
  if (problems.length === 0) {
    const names = [...ta.files.keys()];
    const random = seeded(seed);
    const picked = new Set<string>();
    while (picked.size < Math.min(sample, names.length)) picked.add(names[Math.floor(random() * names.length)]);
    const list = [...picked];
    for (let i = 0; i < list.length; i += 32) {
      await Promise.all(
        list.slice(i, i + 32).map(async (rel) => {
          const [x, y] = await Promise.all([fsp.readFile(path.join(a, rel)), fsp.readFile(path.join(b, rel))]);
          if (!x.equals(y)) problems.push(`${rel}: content differs`);
        }),
      );
    }
  }
  if (problems.length) throw new Error(`B differs from A (${problems.length}): ${problems.slice(0, 5).join('; ')}`);
}

/** Every regular file under `root`, relative, skipping Ferry's own `.ferry-*` names. */
async function listTree(root: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  const walk = async (dir: string, rel: string) => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
      if (e.name === '.ferry' || e.name.startsWith('.ferry-')) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(dir, e.name), r);
      else if (e.isFile()) files.set(r, (await fsp.stat(path.join(dir, e.name))).size);
    }
  };
  await walk(root, '');
  return files;
}

/** Leftover temporary or partial files of Ferry's under `root`. */
async function leftovers(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(dir, e.name));
      else if (e.name.startsWith('.ferry-tmp-') || e.name.startsWith('.ferry-part-')) found.push(path.join(dir, e.name));
    }
  };
  await walk(root);
  return found;
}

/** B holds exactly A's files (and, with `content`, the same bytes); throws what differs. */
async function verify(a: string, b: string, content: boolean): Promise<void> {
  const [ta, tb] = await Promise.all([listTree(a), listTree(b)]);
  const problems: string[] = [];
  for (const [rel, size] of ta) {
    if (!tb.has(rel)) problems.push(`missing ${rel}`);
    else if (tb.get(rel) !== size) problems.push(`${rel}: ${tb.get(rel)} bytes, expected ${size}`);
  }
  for (const rel of tb.keys()) if (!ta.has(rel)) problems.push(`extra ${rel}`);
  const tmp = await leftovers(b);
  if (tmp.length) problems.push(`${tmp.length} temporary files left, e.g. ${tmp[0]}`);
  if (content && problems.length === 0) {
    const names = [...ta.keys()];
    for (let i = 0; i < names.length; i += 32) {
      await Promise.all(
        names.slice(i, i + 32).map(async (rel) => {
          const [x, y] = await Promise.all([fsp.readFile(path.join(a, rel)), fsp.readFile(path.join(b, rel))]);
          if (!x.equals(y)) problems.push(`${rel}: content differs`);
        }),
      );
    }
  }
  if (problems.length) throw new Error(`B differs from A (${problems.length}): ${problems.slice(0, 5).join('; ')}`);
}

async function rmrf(p: string): Promise<void> {
  await fsp.rm(p, { recursive: true, force: true });
}

async function emptyDir(p: string): Promise<void> {
  await rmrf(p);
  await fsp.mkdir(p, { recursive: true });
}

// ---------------------------------------------------------------- Ferry as a process

interface Ferry {
  child: ChildProcess;
  pid: number;
  /** Resolves with the API base once the daemon logs "ferry is running". */
  running: Promise<string>;
  /**
   * Files copied into entry `B` so far, from the log: its info line per batch (`B: 118 copied`,
   * field `copied`), or at debug its line per file.
   */
  copied: { size: number };
  onCopied: (() => void) | null;
  exited: Promise<number | null>;
  tail: string[];
  stop(): Promise<void>;
}

function writeSetup(dir: string, roots: Record<string, string>, sync: string[]): string {
  const entries: Record<string, unknown> = {};
  for (const [name, root] of Object.entries(roots)) entries[name] = { driver: 'local_storage', options: { root } };
  const file = path.join(dir, 'setup.json');
  fs.writeFileSync(file, JSON.stringify({ name: 'bench', entries, rules: [{ match: { path: '/' }, sync }] }, null, 2));
  return file;
}

function startFerry(setupFile: string, dataDir: string, label: string): Ferry {
  const execArgv: string[] = [];
  const env = { ...process.env };
  if (PROFILE_DIR) {
    // NODE_OPTIONS refuses --cpu-prof: the daemon gets it as an argument, its workers through
    // FERRY_WORKER_NODE_OPTIONS. Each process writes its own .cpuprofile when it exits.
    const dir = path.join(PROFILE_DIR, label);
    fs.mkdirSync(dir, { recursive: true });
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
    env.FERRY_WORKER_NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${dir}`;
  }
  const child = spawn(process.execPath, [...execArgv, CLI, 'start', '--setup', setupFile, '--data-dir', dataDir, '--port', '0', '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const ferry: Ferry = {
    child,
    pid: child.pid!,
    running: null as unknown as Promise<string>,
    copied: { size: 0 },
    onCopied: null,
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    tail: [],
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await ferry.exited;
      clearTimeout(timer);
    },
  };
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let buffer = '';
  let resolveRunning!: (url: string) => void;
  let rejectRunning!: (err: Error) => void;
  ferry.running = new Promise<string>((res, rej) => {
    resolveRunning = res;
    rejectRunning = rej;
  });
  ferry.running.catch(() => {});
  void ferry.exited.then((code) => rejectRunning(new Error(`ferry exited with ${code}: ${stderr.slice(-2000)} ${ferry.tail.join('\n')}`)));
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      ferry.tail.push(line);
      if (ferry.tail.length > 50) ferry.tail.shift();
      if (line.includes('"copied":') && line.includes('"entry":"B"')) {
        const entry = JSON.parse(line) as { entry?: string; copied?: number };
        if (entry.entry === 'B' && typeof entry.copied === 'number' && entry.copied > 0) {
          ferry.copied.size += entry.copied;
          ferry.onCopied?.();
        }
      } else if (line.includes('"msg":"ferry is running"')) {
        resolveRunning((JSON.parse(line) as { url: string }).url + '/api/v1.0');
      } else if (line.includes('"level":50') || line.includes('"level":60')) {
        console.log(`  ferry error: ${line.slice(0, 300)}`);
      }
    }
  });
  if (PROFILE_DIR) fs.writeFileSync(path.join(PROFILE_DIR, label, 'daemon.pid'), `${child.pid}\n`);
  return ferry;
}

/**
 * Resolves once `count` distinct files have been copied into B; rejects after `timeoutMs`, or
 * (with `stallMs`) once no file has been copied for that long.
 */
function copiedAll(ferry: Ferry, count: number, timeoutMs: number, stallMs?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s: ${ferry.copied.size} of ${count} copied`)), timeoutMs);
    let progressAt = Date.now();
    let progress = ferry.copied.size;
    const stall = stallMs
      ? setInterval(() => {
          if (ferry.copied.size !== progress) (progress = ferry.copied.size), (progressAt = Date.now());
          else if (Date.now() - progressAt > stallMs) {
            clearTimeout(timer);
            clearInterval(stall!);
            reject(new Error(`no file copied for ${stallMs / 1000} s: ${ferry.copied.size} of ${count} copied`));
          }
        }, 1000)
      : null;
    const check = () => {
      if (ferry.copied.size >= count) {
        clearTimeout(timer);
        if (stall) clearInterval(stall);
        ferry.onCopied = null;
        resolve();
      }
    };
    ferry.onCopied = check;
    void ferry.exited.then((code) => {
      clearTimeout(timer);
      if (stall) clearInterval(stall);
      reject(new Error(`ferry exited (${code}) with ${ferry.copied.size} of ${count} copied: ${ferry.tail.slice(-5).join('\n')}`));
    });
    check();
  });
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Every entry active, nothing queued, nothing running. */
async function inSync(api: string): Promise<boolean> {
  const t = await getJson<{ entries: { name: string; queued: number; running: unknown[] }[] }>(`${api}/transfers`);
  if (!t.entries.every((e) => e.queued === 0 && e.running.length === 0)) return false;
  for (const e of t.entries) {
    const s = await getJson<{ status: string }>(`${api}/entries/${e.name}/status`);
    if (s.status !== 'active') return false;
  }
  return true;
}

async function waitInSync(api: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await inSync(api))) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the entries to be in sync');
    await sleep(5);
  }
}

/** Every file the store lists is up to date in every entry. */
async function storeAllUpToDate(api: string, expected: number): Promise<void> {
  let n = 0;
  for (let offset = 0; ; offset += 1000) {
    const { files } = await getJson<{ files: { filename: string; owners: string[]; uptodate: string[] }[] }>(`${api}/files?offset=${offset}&limit=1000`);
    for (const f of files) {
      if (f.uptodate.length !== f.owners.length) throw new Error(`${f.filename} is not up to date everywhere (${f.uptodate} of ${f.owners})`);
    }
    n += files.length;
    if (files.length < 1000) break;
  }
  if (n !== expected) throw new Error(`the store lists ${n} files, expected ${expected}`);
}

function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Every process below `pid` (children, their children…), from the ppid field of /proc/PID/stat. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid …: comm may hold spaces and parentheses, so count from its last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length) for (const child of children.get(queue.shift()!) ?? []) found.push(child), queue.push(child);
  return found;
}

/**
 * The inotify watches a process holds, with those of its descendants (a watcher may run in a
 * helper process): the `inotify wd:` lines of /proc/PID/fdinfo/FD for each fd that is an inotify
 * instance (/proc/PID/fd/FD → anon_inode:inotify).
 */
function inotifyWatches(pid: number): { watches: number; instances: number } {
  let watches = 0;
  let instances = 0;
  for (const p of [pid, ...descendants(pid)]) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${p}/fd/${fd}`) !== 'anon_inode:inotify') continue;
        const info = fs.readFileSync(`/proc/${p}/fdinfo/${fd}`, 'utf8');
        instances++;
        for (let at = info.indexOf('inotify wd:'); at >= 0; at = info.indexOf('inotify wd:', at + 1)) {
          if (at === 0 || info[at - 1] === '\n') watches++;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return { watches, instances };
}

/** Folders of a tree, its root included, skipping Ferry's own `.ferry*` names. */
async function countFolders(root: string): Promise<number> {
  let n = 1;
  for (const e of await fsp.readdir(root, { withFileTypes: true })) {
    if (e.isDirectory() && e.name !== '.ferry' && !e.name.startsWith('.ferry-')) n += await countFolders(path.join(root, e.name));
  }
  return n;
}

async function workerPids(api: string, names: string[]): Promise<Record<string, number>> {
  const pids: Record<string, number> = {};
  for (const name of names) pids[name] = (await getJson<{ info: { pid: number } }>(`${api}/entries/${name}/stats`)).info.pid;
  return pids;
}

/** GET /files?offset=R&limit=20 at `requests` random offsets (a fixed seed), one at a time, keep-alive: ms each. */
async function pageLatency(api: string, count: number, requests: number): Promise<number[]> {
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const latency: number[] = [];
  for (let i = 0; i < 20; i++) await getJson(`${api}/files?offset=0&limit=20`); // warm-up
  for (let i = 0; i < requests; i++) {
    const offset = Math.floor(random() * (count - 20));
    const t = performance.now();
    const page = await getJson<{ files: unknown[] }>(`${api}/files?offset=${offset}&limit=20`);
    latency.push(performance.now() - t);
    if (page.files.length !== 20) throw new Error(`GET /files?offset=${offset} gave ${page.files.length} files`);
  }
  return latency;
}

// ---------------------------------------------------------------- the cases

type Tool = 'ferry' | 'cp -a' | 'rsync -a' | 'rclone sync' | 'unison';
const PEERS: Record<Exclude<Tool, 'ferry'>, { bin: string; args: (a: string, b: string) => string[] }> = {
  'cp -a': { bin: 'cp', args: (a, b) => ['-a', `${a}/.`, `${b}/`] },
  'rsync -a': { bin: 'rsync', args: (a, b) => ['-a', `${a}/`, `${b}/`] },
  'rclone sync': { bin: 'rclone', args: (a, b) => ['sync', a, b] },
  unison: { bin: 'unison', args: (a, b) => [a, b, '-batch', '-auto'] },
};

interface Row {
  case: string;
  unit: string;
  values: Partial<Record<Tool | 'bare route' | 'rclone copy', ReturnType<typeof stats> | null>>;
  /** ferry ÷ cp -a (times) or ferry ÷ bare route (throughput); the flat case: last ÷ first arrival rate. */
  ratio?: number;
  target?: string;
  met?: boolean;
  extra?: Record<string, unknown>;
  /** What the ferry cell shows instead of its figures (a run that did not finish). */
  display?: string;
}
const rows: Row[] = [];

let work = '';
let peerEnv: NodeJS.ProcessEnv = process.env;

function availablePeers(): Exclude<Tool, 'ferry'>[] {
  const list: Exclude<Tool, 'ferry'>[] = [];
  for (const [tool, spec] of Object.entries(PEERS) as [Exclude<Tool, 'ferry'>, (typeof PEERS)['cp -a']][]) {
    if (have(spec.bin)) list.push(tool);
  }
  return list;
}

async function runPeer(tool: Exclude<Tool, 'ferry'>, a: string, b: string): Promise<number> {
  const spec = PEERS[tool];
  const t0 = performance.now();
  const child = spawn(spec.bin, spec.args(a, b), { stdio: ['ignore', 'ignore', 'pipe'], env: peerEnv });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  spawnSync('sync');
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${tool} exited with ${code}: ${err.slice(-500)}`);
  return seconds;
}

/** Ferry's initial sync of `a` into an empty `b`: spawn → every file copied → sync. */
async function runFerryInitial(
  dir: string,
  a: string,
  b: string,
  count: number,
  label: string,
  timeouts: { totalMs?: number; stallMs?: number } = {},
): Promise<{ seconds: number; ferry: Ferry }> {
  const setup = writeSetup(dir, { A: a, B: b }, ['A', 'B']);
  const dataDir = path.join(dir, 'store');
  const t0 = performance.now();
  const ferry = startFerry(setup, dataDir, label);
  try {
    await copiedAll(ferry, count, timeouts.totalMs ?? Math.max(120_000, count * 20), timeouts.stallMs);
  } catch (err) {
    await ferry.stop();
    throw err;
  }
  spawnSync('sync');
  return { seconds: (performance.now() - t0) / 1000, ferry };
}

async function caseInitial(set: 'large' | 'small', peers: Exclude<Tool, 'ferry'>[]): Promise<void> {
  const { count } = SETS[set];
  const dir = path.join(work, set);
  const a = path.join(dir, 'A');
  const b = path.join(dir, 'B');
  console.log(`\n[initial sync ${set}] ${count} files, A → empty B, ${RUNS} runs`);
  await generate(set, a);
  const times: Record<string, number[]> = {};
  const tools: Tool[] = [...peers, 'ferry'];
  for (let run = 1; run <= RUNS; run++) {
    for (const tool of tools) {
      await emptyDir(b);
      await rmrf(path.join(dir, 'store'));
      await rmrf(path.join(a, '.ferry-entry'));
      await emptyDir(peerEnv.UNISON as string); // unison starts without an archive
      dropCaches();
      let seconds: number;
      if (tool === 'ferry') {
        const r = await runFerryInitial(dir, a, b, count, `initial-${set}-${run}`);
        seconds = r.seconds;
        await r.ferry.stop();
        await verify(a, b, true);
      } else {
        seconds = await runPeer(tool, a, b);
        await verify(a, b, false);
      }
      (times[tool] ??= []).push(seconds);
      console.log(`  run ${run} ${tool.padEnd(11)} ${seconds.toFixed(2)} s`);
    }
  }
  const values: Row['values'] = {};
  for (const tool of tools) values[tool] = stats(times[tool]);
  const ratio = values['cp -a'] && values.ferry ? values.ferry.median / values['cp -a'].median : undefined;
  rows.push({
    case: `initial sync ${set} (${count} × ${set === 'large' ? '4 MiB' : '1 KiB'})`,
    unit: 's',
    values,
    ratio,
    // Issue 10's targets: large ≤ 1.3× cp -a, small ≤ 1.5×.
    target: `≤ ${INITIAL_TARGET[set]}× cp -a`,
    met: ratio !== undefined ? ratio <= INITIAL_TARGET[set] : undefined,
  });
}

/** The initial syncs' targets, as ratios to cp -a (issue 10). */
const INITIAL_TARGET: Record<string, number> = { large: 1.3, small: 1.5, huge: 2.5 };

/** Second starts of a daemon whose store knows A and B, equal: spawn → in sync. */
async function caseNoChange(peers: Exclude<Tool, 'ferry'>[]): Promise<void> {
  const { count } = SETS.small;
  const dir = path.join(work, 'small');
  const a = path.join(dir, 'A');
  const b = path.join(dir, 'B');
  console.log(`\n[no-change start] ${count} files already equal in A and B, known to the store; ${RUNS} runs`);
  if (!fs.existsSync(a)) await generate('small', a);
  // The store must know both trees: a first sync (untimed) unless the initial case left one.
  if (!fs.existsSync(path.join(dir, 'store')) || !fs.existsSync(path.join(b, '.ferry-entry'))) {
    await emptyDir(b);
    await rmrf(path.join(dir, 'store'));
    await rmrf(path.join(a, '.ferry-entry'));
    const r = await runFerryInitial(dir, a, b, count, 'nochange-prepare');
    await r.ferry.stop();
  }
  const setup = writeSetup(dir, { A: a, B: b }, ['A', 'B']);
  const times: Record<string, number[]> = { ferry: [] };
  for (let run = 1; run <= RUNS; run++) {
    dropCaches();
    const t0 = performance.now();
    const ferry = startFerry(setup, path.join(dir, 'store'), `nochange-${run}`);
    let seconds: number;
    let listening: number;
    try {
      const api = await ferry.running;
      listening = (performance.now() - t0) / 1000;
      await waitInSync(api, 120_000);
      seconds = (performance.now() - t0) / 1000;
      if (ferry.copied.size > 0) note(`no-change start copied ${ferry.copied.size} files`);
      if (run === RUNS) await storeAllUpToDate(api, count);
    } finally {
      await ferry.stop();
    }
    times.ferry.push(seconds);
    console.log(`  run ${run} ferry       ${seconds.toFixed(2)} s (listening after ${listening.toFixed(2)} s)`);
  }
  // The peers on two equal trees: a pristine copy of A (unison with its archive already made).
  const peersHere = peers.filter((p) => p === 'rclone sync' || p === 'unison');
  if (peersHere.length) {
    const copy = path.join(dir, 'B2');
    await rmrf(copy);
    sh('cp', ['-a', a, copy]);
    await emptyDir(peerEnv.UNISON as string);
    // unison's archive of the two trees is made first (untimed): its runs below are second runs.
    if (peersHere.includes('unison')) await runPeer('unison', a, copy);
    for (let run = 1; run <= RUNS; run++) {
      for (const tool of peersHere) {
        dropCaches();
        const seconds = await runPeer(tool, a, copy);
        (times[tool] ??= []).push(seconds);
        console.log(`  run ${run} ${tool.padEnd(11)} ${seconds.toFixed(2)} s`);
      }
    }
    await rmrf(copy);
  }
  const values: Row['values'] = {};
  for (const [tool, t] of Object.entries(times)) values[tool as Tool] = stats(t);
  rows.push({
    case: `no-change start (${count} × 1 KiB)`,
    unit: 's',
    values,
    target: '≤ 1.0 s',
    met: values.ferry!.median <= 1.0,
  });
}

/** A 1 KiB file written in A until its complete copy is in B, seen by our own inotify watch. */
async function caseLatency(): Promise<void> {
  const dir = path.join(work, 'latency');
  const a = path.join(dir, 'A');
  const b = path.join(dir, 'B');
  console.log(`\n[propagation latency] ${LATENCY_SAMPLES} samples of a 1 KiB file written in A`);
  await emptyDir(a);
  await emptyDir(b);
  await fsp.mkdir(path.join(a, 'lat'));
  await fsp.mkdir(path.join(b, 'lat'));
  fs.writeFileSync(path.join(a, 'lat', 'seed.bin'), bytesFor('latency', 0, 1024));
  const setup = writeSetup(dir, { A: a, B: b }, ['A', 'B']);
  const ferry = startFerry(setup, path.join(dir, 'store'), 'latency');
  const samples: number[] = [];
  try {
    const api = await ferry.running;
    await copiedAll(ferry, 1, 30_000);
    await waitInSync(api, 30_000);
    await sleep(500);
    const watchDir = path.join(b, 'lat');
    for (let i = 1; i <= LATENCY_SAMPLES; i++) {
      const name = `s${String(i).padStart(3, '0')}.bin`;
      const data = bytesFor('latency', i, 1024);
      const target = path.join(watchDir, name);
      const complete = () => {
        try {
          return fs.readFileSync(target).equals(data);
        } catch {
          return false;
        }
      };
      let done!: () => void;
      const arrived = new Promise<void>((resolve) => (done = resolve));
      const watcher = fs.watch(watchDir, (_event, file) => {
        if (file === name && complete()) done();
      });
      // A fallback in case an event is missed (coarser: 20 ms).
      const poll = setInterval(() => complete() && done(), 20);
      const t0 = performance.now();
      fs.writeFileSync(path.join(a, 'lat', name), data);
      const timeout = sleep(10_000).then(() => 'timeout');
      const outcome = await Promise.race([arrived.then(() => 'ok'), timeout]);
      const ms = performance.now() - t0;
      watcher.close();
      clearInterval(poll);
      if (outcome !== 'ok') {
        note(`latency sample ${i} did not arrive within 10 s`);
        samples.push(10_000);
      } else samples.push(ms);
      // Let the daemon settle (its re-checks of the file) before the next sample.
      await sleep(150);
    }
    await waitInSync(api, 30_000);
    await verify(a, b, true);
  } finally {
    await ferry.stop();
  }
  const s = stats(samples);
  console.log(`  p50 ${s.p50.toFixed(1)} ms, p95 ${s.p95.toFixed(1)} ms, max ${s.max.toFixed(1)} ms`);
  rows.push({
    case: `propagation latency p50 / p95 (${samples.length} × 1 KiB)`,
    unit: 'ms',
    values: { ferry: s },
    target: 'p50 ≤ 10 ms',
    met: s.p50 <= 10,
    extra: { samples },
  });
}

/**
 * 30,000 files of 100 B written at full speed into one folder, A/big, of a running daemon whose
 * roots were empty: from the first write until every file is in B/big with its size (B polled
 * every 50 ms: readdir, then a stat of each name not yet seen complete), and the arrival rate of
 * the first and of the last 5,000 files (a queue or a folder listing that slows down as the
 * folder grows shows as a ratio below 1).
 */
async function caseFlat(): Promise<void> {
  const { count, size } = SETS.flat;
  const dir = path.join(work, 'flat');
  const a = path.join(dir, 'A');
  const b = path.join(dir, 'B');
  console.log(`\n[flat folder] ${count} × ${size} B written into A/big while the daemon runs; ${RUNS} runs`);
  const runs: {
    seconds: number | null;
    arrived: number;
    written: number;
    firstRate: number | null;
    lastRate: number | null;
    ratio: number | null;
    crossings: Record<string, { ms: number; count: number } | null>;
  }[] = [];
  for (let run = 1; run <= RUNS; run++) {
    await emptyDir(a);
    await emptyDir(b);
    await rmrf(path.join(dir, 'store'));
    const setup = writeSetup(dir, { A: a, B: b }, ['A', 'B']);
    dropCaches();
    const ferry = startFerry(setup, path.join(dir, 'store'), `flat-${run}`);
    try {
      const api = await ferry.running;
      await waitInSync(api, 60_000);
      await sleep(500); // as the latency case: let the watchers settle before the clock starts

      const writer = spawn(process.execPath, [path.join(REPO, 'bench/write-flat.mjs'), path.join(a, 'big'), String(count), String(size)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const writerExit = new Promise<number | null>((resolve) => writer.once('exit', (code) => resolve(code)));
      let out = '';
      let doneAt: number | null = null;
      const startAt = await new Promise<number>((resolve, reject) => {
        writer.stdout!.on('data', (d) => {
          out += d;
          const start = /^start (\S+)$/m.exec(out);
          if (start) resolve(Number(start[1]));
          const done = /^done (\S+)$/m.exec(out);
          if (done) doneAt = Number(done[1]);
        });
        void writerExit.then((code) => reject(new Error(`the writer exited with ${code} before writing`)));
      });

      // Poll B/big: the count of complete files, and when it first reached each mark.
      const big = path.join(b, 'big');
      const complete = new Set<string>();
      const marks = { first: 1, window: FLAT_WINDOW, lastWindow: count - FLAT_WINDOW, all: count };
      const crossed: Record<keyof typeof marks, { ms: number; count: number } | null> = { first: null, window: null, lastWindow: null, all: null };
      let lastPoll = -Infinity;
      for (;;) {
        const wait = lastPoll + FLAT_POLL_MS - epoch();
        if (wait > 0) await sleep(wait);
        lastPoll = epoch();
        let names: string[] = [];
        try {
          names = fs.readdirSync(big);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        const seenAt = epoch() - startAt; // every name listed was there by now
        for (const name of names) {
          if (complete.has(name) || name.startsWith('.ferry')) continue;
          const st = fs.statSync(path.join(big, name), { throwIfNoEntry: false });
          if (st?.isFile() && st.size === size) complete.add(name);
        }
        for (const mark of Object.keys(marks) as (keyof typeof marks)[]) {
          if (!crossed[mark] && complete.size >= marks[mark]) crossed[mark] = { ms: seenAt, count: complete.size };
        }
        if (complete.size >= count || seenAt > FLAT_TIMEOUT_MS) break;
      }
      const writerCode = await writerExit;
      if (writerCode !== 0) throw new Error(`the writer exited with ${writerCode}`);
      const written = doneAt !== null ? (doneAt - startAt) / 1000 : NaN;
      // Files per second between the polls that saw each window begin and end.
      const rate = (from: { ms: number; count: number } | null, to: { ms: number; count: number } | null) =>
        from && to && to.ms > from.ms ? ((to.count - from.count) / (to.ms - from.ms)) * 1000 : null;
      const firstRate = rate(crossed.first, crossed.window);
      const lastRate = rate(crossed.lastWindow, crossed.all);
      const ratio = firstRate && lastRate ? lastRate / firstRate : null;
      const seconds = crossed.all ? crossed.all.ms / 1000 : null;
      runs.push({ seconds, arrived: complete.size, written, firstRate, lastRate, ratio, crossings: crossed });
      const r = (x: number | null) => (x === null ? '?' : x.toFixed(0));
      console.log(
        `  run ${run} ferry       ${seconds === null ? `only ${complete.size} of ${count} in B after ${FLAT_TIMEOUT_MS / 1000} s` : `${seconds.toFixed(2)} s`} ` +
          `(written in ${written.toFixed(2)} s); first ${FLAT_WINDOW}: ${r(firstRate)} files/s, last ${FLAT_WINDOW}: ${r(lastRate)} files/s, ` +
          `last/first ${ratio === null ? '?' : ratio.toFixed(2)}`,
      );
      if (seconds === null) break; // a daemon that cannot keep up will not in the next runs either
      if (firstRate === null || lastRate === null) note(`flat run ${run}: a window was crossed within one poll (${FLAT_POLL_MS} ms); its rate is unknown at this scale`);
      await waitInSync(api, 120_000);
      await verify(a, b, true);
    } finally {
      await ferry.stop();
    }
  }
  const done = runs.filter((x) => x.seconds !== null);
  const ratios = runs.map((x) => x.ratio).filter((x): x is number => x !== null);
  const ratio = ratios.length ? stats(ratios).median : undefined;
  const seconds = done.length === runs.length ? stats(done.map((x) => x.seconds!)) : null;
  const row: Row = {
    case: `flat folder: ${count} × ${size} B written into A/big, until all in B/big`,
    unit: 's',
    values: { ferry: seconds },
    ratio,
    target: `all in B ≤ 15 s; last/first ${FLAT_WINDOW} files/s ≥ 0.7`,
    met: seconds !== null && ratio !== undefined ? seconds.median <= 15 && ratio >= 0.7 : false,
    extra: { runs, window: FLAT_WINDOW, pollMs: FLAT_POLL_MS },
  };
  if (!seconds) row.display = `${runs.at(-1)!.arrived} of ${count} in ${FLAT_TIMEOUT_MS / 1000} s`;
  rows.push(row);
  if (!seconds) throw new Error(`only ${runs.at(-1)!.arrived} of ${count} files reached B/big within ${FLAT_TIMEOUT_MS / 1000} s`);
}

/**
 * 1,000,000 files of 0–64 B in 1,000 folders (on request only: it takes a long while): the
 * initial sync beside cp -a, the peak RSS of daemon + workers during it, a no-change start, and
 * GET /files at 200 random offsets on that daemon; then every size and 2,000 files' bytes.
 */
async function caseMillion(): Promise<void> {
  const { count, maxSize, folders } = MILLION;
  const dir = path.join(work, 'million');
  const a = path.join(dir, 'A');
  const b = path.join(dir, 'B');
  console.log(`\n[million] ${count} files of 0–${maxSize} B in ${folders} folders: initial sync, no-change start, GET /files; 1 run`);
  await generateMillion(a);
  const limit = Number(fs.readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8'));
  if (2 * (count + folders) > limit) {
    note(`million: a watch per file and folder in A and B would need ${2 * (count + folders)} inotify watches; max_user_watches is ${limit}`);
  }

  await emptyDir(b);
  dropCaches();
  const cpSeconds = await runPeer('cp -a', a, b);
  await verifySizesAndSample(a, b, count, 0, MILLION.seed);
  console.log(`  cp -a       ${cpSeconds.toFixed(2)} s`);
  await emptyDir(b);

  dropCaches();
  // At this count a daemon that cannot keep up would run for hours: give up after an hour, or
  // after two minutes without a copy (a watcher out of inotify watches, a stuck queue).
  const first = await runFerryInitial(dir, a, b, count, 'million-initial', { totalMs: 3_600_000, stallMs: 120_000 });
  try {
    const api = await first.ferry.running;
    const pids = await workerPids(api, ['A', 'B']);
    const peak = { daemon: memoryOf(first.ferry.pid).hwm, A: memoryOf(pids.A).hwm, B: memoryOf(pids.B).hwm };
    console.log(`  ferry       ${first.seconds.toFixed(2)} s`);
    rows.push({
      case: `initial sync million (${count} × 0–${maxSize} B in ${folders} folders), 1 run`,
      unit: 's',
      values: { ferry: stats([first.seconds]), 'cp -a': stats([cpSeconds]) },
      ratio: first.seconds / cpSeconds,
    });
    const mib = (n: number) => Math.round((n / MiB) * 10) / 10;
    const total = mib(peak.daemon + peak.A + peak.B);
    console.log(`  peak RSS during the initial sync: ${total} MiB (daemon ${mib(peak.daemon)}, A ${mib(peak.A)}, B ${mib(peak.B)})`);
    rows.push({
      case: `memory, peak RSS of daemon + workers during the initial sync (${count} files)`,
      unit: 'MiB',
      values: { ferry: stats([total]) },
      target: '≤ 1024 MiB',
      met: total <= 1024,
      extra: { daemon: mib(peak.daemon), workerA: mib(peak.A), workerB: mib(peak.B) },
    });
    await storeAllUpToDate(api, count);
  } finally {
    await first.ferry.stop();
  }

  // The no-change start, then the API on that daemon.
  const setup = writeSetup(dir, { A: a, B: b }, ['A', 'B']);
  dropCaches();
  const t0 = performance.now();
  const ferry = startFerry(setup, path.join(dir, 'store'), 'million-second');
  try {
    const api = await ferry.running;
    const listening = (performance.now() - t0) / 1000;
    await waitInSync(api, 1_800_000);
    const restart = (performance.now() - t0) / 1000;
    if (ferry.copied.size > 0) note(`million: the no-change start copied ${ferry.copied.size} files`);
    console.log(`  no-change start in sync after ${restart.toFixed(2)} s (listening after ${listening.toFixed(2)} s)`);
    rows.push({ case: `no-change start (${count} × 0–${maxSize} B), 1 run`, unit: 's', values: { ferry: stats([restart]) }, target: '≤ 40 s', met: restart <= 40 });

    const s = stats(await pageLatency(api, count, MILLION.pageRequests));
    console.log(`  GET /files p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms (${s.n} random offsets)`);
    rows.push({
      case: `GET /files page p50 / p99 (${count} files, ${s.n} random offsets)`,
      unit: 'ms',
      values: { ferry: s },
      target: 'p50 ≤ 2 ms',
      met: s.p50 <= 2,
    });
  } finally {
    await ferry.stop();
  }
  const tv = performance.now();
  await verifySizesAndSample(a, b, count, MILLION.sample, MILLION.seed + 1);
  console.log(`  B equals A: every size, ${Math.min(MILLION.sample, count)} files byte for byte (${((performance.now() - tv) / 1000).toFixed(1)} s)`);
}

async function bareServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [path.join(REPO, 'bench/bare-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`bare server exited with ${code}`)));
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

async function cannon(url: string): Promise<number> {
  const result = await autocannon({ url, connections: 10, duration: AUTOCANNON_SECONDS });
  if (result.errors || result.non2xx) throw new Error(`autocannon: ${result.errors} errors, ${result.non2xx} non-2xx on ${url}`);
  return result.requests.average;
}

/**
 * 100,000 files tracked and watched: an initial sync of the huge set (timed once, beside one
 * cp -a), then a second start; the API is measured on that daemon, and the memory of the daemon
 * and of each worker (peak and settled), and the inotify watches each worker holds.
 */
async function caseHuge(peers: Exclude<Tool, 'ferry'>[]): Promise<void> {
  const { count } = SETS.huge;
  const dir = path.join(work, 'huge');
  const a = path.join(dir, 'A');
  const b = path.join(dir, 'B');
  console.log(`\n[${count} files tracked] initial sync, second start, API and memory`);
  await generate('huge', a);
  const values: Row['values'] = {};
  if (peers.includes('cp -a')) {
    await emptyDir(b);
    dropCaches();
    const seconds = await runPeer('cp -a', a, b);
    await verify(a, b, false);
    values['cp -a'] = stats([seconds]);
    console.log(`  cp -a       ${seconds.toFixed(2)} s`);
  }
  await emptyDir(b);
  dropCaches();
  const first = await runFerryInitial(dir, a, b, count, 'huge-initial');
  const firstApi = await first.ferry.running;
  const firstPids = await workerPids(firstApi, ['A', 'B']);
  const firstPeak = { daemon: memoryOf(first.ferry.pid).hwm, A: memoryOf(firstPids.A).hwm, B: memoryOf(firstPids.B).hwm };
  await storeAllUpToDate(firstApi, count);
  await first.ferry.stop();
  await verify(a, b, true);
  values.ferry = stats([first.seconds]);
  console.log(`  ferry       ${first.seconds.toFixed(2)} s`);
  rows.push({
    case: `initial sync huge (${count} × 16 B), 1 run`,
    unit: 's',
    values,
    ratio: values['cp -a'] ? first.seconds / values['cp -a'].median : undefined,
    target: `≤ ${INITIAL_TARGET.huge}× cp -a`,
    met: values['cp -a'] ? first.seconds / values['cp -a'].median <= INITIAL_TARGET.huge : undefined,
  });

  // The second start: every file known, A and B equal.
  const setup = writeSetup(dir, { A: a, B: b }, ['A', 'B']);
  dropCaches();
  const t0 = performance.now();
  const ferry = startFerry(setup, path.join(dir, 'store'), 'huge-second');
  try {
    const api = await ferry.running;
    await waitInSync(api, 300_000);
    const restart = (performance.now() - t0) / 1000;
    console.log(`  second start in sync after ${restart.toFixed(2)} s`);
    rows.push({ case: `no-change start (${count} × 16 B), 1 run`, unit: 's', values: { ferry: stats([restart]) }, target: '≤ 4 s', met: restart <= 4 });
    const pids = await workerPids(api, ['A', 'B']);
    await sleep(2000);
    const settled = { daemon: memoryOf(ferry.pid).rss, A: memoryOf(pids.A).rss, B: memoryOf(pids.B).rss };
    const watches = CASES.has('memory') ? { A: inotifyWatches(pids.A), B: inotifyWatches(pids.B) } : null;

    if (CASES.has('api')) {
      const latency = await pageLatency(api, count, API_REQUESTS);
      const last: number[] = [];
      for (let i = 0; i < 50; i++) {
        const t = performance.now();
        await getJson(`${api}/files?offset=${count - 20}&limit=20`);
        last.push(performance.now() - t);
      }
      const s = stats(latency);
      const worst = stats(last);
      console.log(`  GET /files p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms; last page p50 ${worst.p50.toFixed(2)} ms`);
      rows.push({
        case: `GET /files page p50 / p99 (${count} files, random offsets)`,
        unit: 'ms',
        values: { ferry: s },
        target: 'p50 ≤ 2 ms',
        met: s.p50 <= 2 && worst.p50 <= 2,
        extra: { lastPage: worst },
      });

      const bare = await bareServer();
      try {
        const ferryRps: number[] = [];
        const bareRps: number[] = [];
        for (let run = 0; run < 2; run++) {
          ferryRps.push(await cannon(`${api}/entries/A/status`));
          bareRps.push(await cannon(`${bare.url}/api/v1.0/entries/A/status`));
        }
        const fs_ = stats(ferryRps);
        const bs = stats(bareRps);
        console.log(`  status: ferry ${fs_.median.toFixed(0)} req/s, bare ${bs.median.toFixed(0)} req/s`);
        rows.push({
          case: 'GET /entries/A/status throughput',
          unit: 'req/s',
          values: { ferry: fs_, 'bare route': bs },
          ratio: fs_.median / bs.median,
          target: '≥ 0.7× bare route',
          met: fs_.median / bs.median >= 0.7,
        });
      } finally {
        await bare.stop();
      }
    }

    if (CASES.has('memory')) {
      const peak = { daemon: memoryOf(ferry.pid).hwm, A: memoryOf(pids.A).hwm, B: memoryOf(pids.B).hwm };
      const sum = (m: { daemon: number; A: number; B: number }) => m.daemon + m.A + m.B;
      const mib = (n: number) => Math.round((n / MiB) * 10) / 10;
      console.log(
        `  RSS settled: daemon ${mib(settled.daemon)}, A ${mib(settled.A)}, B ${mib(settled.B)} MiB; ` +
          `peak since the second start ${mib(sum(peak))} MiB; peak during the initial sync ${mib(sum(firstPeak))} MiB`,
      );
      const one = (n: number) => stats([mib(n)]);
      rows.push({
        case: `memory, peak RSS after a second start (${count} files tracked and watched)`,
        unit: 'MiB',
        values: { ferry: one(sum(peak)) },
        target: '≤ 400 MiB',
        met: mib(sum(peak)) <= 400,
        extra: {
          peak: { daemon: mib(peak.daemon), workerA: mib(peak.A), workerB: mib(peak.B) },
          settled: { daemon: mib(settled.daemon), workerA: mib(settled.A), workerB: mib(settled.B) },
          initialSyncPeak: { daemon: mib(firstPeak.daemon), workerA: mib(firstPeak.A), workerB: mib(firstPeak.B), total: mib(sum(firstPeak)) },
        },
      });

      // A watcher needs one inotify watch per folder; one per file is what exhausts the
      // user's max_user_watches (shared by every process of the user) on large trees.
      const folders = { A: await countFolders(a), B: await countFolders(b) };
      const limit = Number(fs.readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8'));
      const w = watches!;
      console.log(
        `  inotify watches: worker A ${w.A.watches} (${w.A.instances} instances), worker B ${w.B.watches} (${w.B.instances} instances); ` +
          `folders: A ${folders.A}, B ${folders.B} (target ≤ folders + 10 per entry; max_user_watches ${limit})`,
      );
      rows.push({
        case: `inotify watches per worker, A / B (${count} files, ${folders.A} / ${folders.B} folders)`,
        unit: 'watches',
        values: { ferry: stats([w.A.watches, w.B.watches]) },
        display: `${w.A.watches} / ${w.B.watches}`,
        target: '≤ folders + 10 per entry',
        met: w.A.watches <= folders.A + 10 && w.B.watches <= folders.B + 10,
        extra: { workerA: w.A, workerB: w.B, folders, maxUserWatches: limit },
      });
    }
  } finally {
    await ferry.stop();
  }
}

// ---------------------------------------------------------------- output

function machine() {
  const df = sh('df', ['-hT', os.tmpdir()]).out.trim().split('\n').pop()!.split(/\s+/);
  const device = df[0];
  const block = path.basename(device).replace(/\d+$/, '');
  const rotational = fs.existsSync(`/sys/block/${block}/queue/rotational`) ? fs.readFileSync(`/sys/block/${block}/queue/rotational`, 'utf8').trim() : '?';
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? '?',
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    disk: `${device} (${df[1]}, ${df[2]}, ${rotational === '0' ? 'non-rotational' : rotational === '1' ? 'rotational' : 'unknown type'})`,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    tools: Object.fromEntries(
      (['cp', 'rsync', 'rclone', 'unison'] as const).map((t) => [
        t,
        have(t) ? sh(t, [t === 'unison' ? '-version' : '--version']).out.split('\n')[0].trim() : 'missing',
      ]),
    ),
  };
}

const COLUMNS: (Tool | 'bare route' | 'rclone copy')[] = ['ferry', 'cp -a', 'rsync -a', 'rclone sync', 'rclone copy', 'unison', 'bare route'];

function cell(row: Row, tool: Tool | 'bare route' | 'rclone copy'): string {
  if (tool === 'ferry' && row.display) return row.display;
  const s = row.values[tool];
  if (!s) return '';
  const f = (n: number) => (row.unit === 's' ? n.toFixed(2) : row.unit === 'ms' ? n.toFixed(1) : n.toFixed(0));
  if (row.unit === 'ms' && tool === 'ferry') {
    const p = row.case.includes('p99') ? s.p99 : s.p95;
    return `${f(s.p50)} / ${f(p)} ms`;
  }
  if (s.n === 1) return `${f(s.median)} ${row.unit}`;
  return `${f(s.median)} ${row.unit} (${f(s.min)}–${f(s.max)})`;
}

function table(): { text: string; markdown: string } {
  const header = ['case', ...COLUMNS, 'ratio', 'target', 'met'];
  const body = rows.map((r) => [
    r.case,
    ...COLUMNS.map((c) => cell(r, c)),
    r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '',
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  const text = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
  const md = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
  return { text, markdown: md };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = performance.now();
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
  // Peers keep no state outside the temporary folder: rclone without a config, unison's archives here.
  peerEnv = { ...process.env, RCLONE_CONFIG: path.join(work, 'rclone.conf'), UNISON: path.join(work, 'unison') };
  fs.writeFileSync(path.join(work, 'rclone.conf'), '');
  const info = machine();
  console.log(`ferry bench: scale ${SCALE}, ${RUNS} runs, cases ${[...CASES].join(', ')}, in ${work}`);
  console.log(`machine: ${info.nproc} cpus (${info.cpu}), ${info.ramGiB} GiB RAM, disk ${info.disk}, node ${info.node}`);
  const peers = availablePeers();
  for (const tool of Object.keys(PEERS) as (keyof typeof PEERS)[]) {
    if (!peers.includes(tool)) note(`${tool} is not installed: skipped (Debian package ${PEERS[tool].bin})`);
  }
  dropCaches();
  if (cacheDropWorks) console.log('  the page cache is dropped before every timed run');
  const failures: string[] = [];
  const attempt = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
      console.log(`  FAILED ${name}: ${(err as Error).stack}`);
    }
  };
  try {
    // The huge set is unscaled by the peers' runs: it is measured on Ferry (and one cp -a).
    const unisonEnv = peerEnv.UNISON as string;
    fs.mkdirSync(unisonEnv, { recursive: true });
    if (CASES.has('initial')) {
      await attempt('initial sync large', async () => {
        await caseInitial('large', peers);
        await rmrf(path.join(work, 'large'));
      });
      await attempt('initial sync small', () => caseInitial('small', peers));
    }
    if (CASES.has('nochange')) await attempt('no-change start', () => caseNoChange(peers));
    await rmrf(path.join(work, 'small'));
    if (CASES.has('latency')) await attempt('propagation latency', caseLatency);
    if (CASES.has('flat')) {
      await attempt('flat folder', caseFlat);
      await rmrf(path.join(work, 'flat'));
    }
    if (CASES.has('api') || CASES.has('memory')) await attempt('100,000 files', () => caseHuge(peers));
    await rmrf(path.join(work, 'huge'));
    if (CASES.has('million')) await attempt('1,000,000 files', caseMillion);
    await attempt('remote storage', () =>
      remoteCases({ work, scale: SCALE, runs: RUNS, cases: CASES, startFerry, copiedAll, dropCaches, have, stats, note, addRow: (row) => rows.push(row) }),
    );
  } finally {
    if (!KEEP) await rmrf(work);
  }
  const { text, markdown } = table();
  const minutes = (performance.now() - started) / 60_000;
  console.log(`\n${text}\n`);
  for (const n of notes) console.log(`note: ${n}`);
  for (const f of failures) console.log(`FAILED: ${f}`);
  console.log(`bench took ${minutes.toFixed(1)} min`);
  fs.mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const commit = sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']).out.trim();
  const dirty = sh('git', ['-C', REPO, 'status', '--porcelain', 'src', 'machines']).out.trim() !== '';
  const result = {
    date: new Date().toISOString(),
    commit: `${commit}${dirty ? '+changes' : ''}`,
    scale: SCALE,
    runs: RUNS,
    cases: [...CASES],
    pageCacheDropped: cacheDropWorks === true,
    machine: info,
    sets: { ...SETS, million: MILLION },
    minutes: Math.round(minutes * 10) / 10,
    rows,
    notes,
    failures,
    table: text,
    markdown,
  };
  const file = path.join(RESULTS, `bench-${stamp}.json`);
  fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  // latest.* is the last full run (what the README shows); a development run is latest-dev.*.
  const latest = SCALE === 1 && DEFAULT_CASES.every((c) => CASES.has(c)) ? 'latest' : 'latest-dev';
  fs.writeFileSync(path.join(RESULTS, `${latest}.json`), JSON.stringify(result, null, 2) + '\n');
  fs.writeFileSync(path.join(RESULTS, `${latest}.md`), `${markdown}\n`);
  console.log(`results: ${path.relative(process.cwd(), file)} (and bench/results/${latest}.json, ${latest}.md)`);
  if (failures.length) process.exitCode = 1;
}

await main();
