/**
 * The entry point of an entry's worker process: runs one driver and speaks the IPC protocol
 * of `protocol.ts` with the daemon. It exits when the daemon goes away, however it died.
 */
import type { WorkerReport } from '../../machines/reports.js';
import type { Driver } from './driver.js';
import { DriverRefusal } from './driver.js';
import type { FromWorker, JobCommand, LogLevel, ToWorker } from './protocol.js';
import { drivers } from './registry.js';
import { VersionMissing } from '../versions/keeper.js';
import { closeSourceReaders } from './source-reader.js';

let driver: Driver | null = null;
let entry = '';
let stopping = false;

/**
 * Files a scan report carries at most: a longer scan goes as `scan.chunk`s before its end.
 * `FERRY_SCAN_CHUNK` sets another size (tests use a small one).
 */
export const SCAN_CHUNK = Number(process.env.FERRY_SCAN_CHUNK) > 0 ? Number(process.env.FERRY_SCAN_CHUNK) : 10_000;
/** Reports sent at once at most: the daemon records what is done while more gets done. */
const REPORTS_PER_MESSAGE = 256;

/** Reports not sent yet: those of one turn of the event loop go in one message. */
let unsent: WorkerReport[] = [];
let flushQueued = false;

function flushReports(): void {
  if (unsent.length === 0) return;
  const reports = unsent;
  unsent = [];
  if (process.connected) process.send!({ type: 'reports', reports } satisfies FromWorker);
}

function report(r: WorkerReport): void {
  if (r.type === 'entry.scanned' || r.type === 'scan.chunk') {
    // A scan in chunks, each its own message (what came before it first): neither process
    // holds more than one chunk of it at a time.
    const { files } = r;
    let start = 0;
    for (; files.length - start > SCAN_CHUNK; start += SCAN_CHUNK) {
      unsent.push({ type: 'scan.chunk', entry: r.entry, files: files.slice(start, start + SCAN_CHUNK) });
      flushReports();
    }
    unsent.push(start === 0 ? r : { ...r, files: files.slice(start) });
    flushReports();
    return;
  }
  unsent.push(r);
  // Many jobs finishing in one turn (small files, done synchronously) go out as they are done.
  if (unsent.length >= REPORTS_PER_MESSAGE) flushReports();
  if (flushQueued) return;
  flushQueued = true;
  setImmediate(() => {
    flushQueued = false;
    flushReports();
  });
}

/** Any other message goes after the reports made before it: the daemon sees them in order. */
function send(message: FromWorker): void {
  flushReports();
  if (process.connected) process.send!(message);
}

function log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
  send({ type: 'log', level, msg, fields });
}

/** Jobs given and not started yet, from `next` on. */
let pending: JobCommand[] = [];
let next = 0;
let draining = false;
/**
 * How long jobs are started in one turn. A small file's copy is done synchronously when it is
 * started: in slices, what one slice finished is reported (and recorded by the daemon, which
 * sends more) while the next slice copies.
 */
const SLICE_MS = 25;

function drain(): void {
  flushReports();
  const start = performance.now();
  while (next < pending.length && driver && !stopping) {
    const job = pending[next++]!;
    void driver.run(job).then((outcome) => report({ type: 'job.finished', entry, jobId: job.id, outcome }));
    if (performance.now() - start > SLICE_MS) break;
  }
  if (next >= pending.length || stopping) {
    pending = [];
    next = 0;
    draining = false;
  } else {
    setImmediate(drain);
  }
}

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.race([Promise.all([driver?.stop(), closeSourceReaders()]), new Promise((r) => setTimeout(r, 2000))]).catch(() => {});
  }
  flushReports();
  process.exit(code);
}

async function init(message: Extract<ToWorker, { type: 'init' }>): Promise<void> {
  entry = message.entry;
  const spec = drivers[message.driver];
  if (!spec) {
    send({ type: 'fatal', reason: `unknown driver ${message.driver}` });
    return stop(3);
  }
  /** Whether the driver said which ignore patterns it applies (local_storage adds its .ferryignore's). */
  let toldIgnore = false;
  try {
    const factory = await spec.load();
    driver = factory({
      entry: message.entry,
      options: message.options,
      knownFiles: message.knownFiles,
      digests: () => digests ?? Promise.resolve(new Map()),
      report,
      log,
      progress: (jobId, bytes) => send({ type: 'progress', jobId, bytes }),
      conflict: (path, conflict) => send({ type: 'conflict', path, conflict }),
      watchState: (state) => send({ type: 'watch', state }),
      ignore: message.ignore ?? [],
      versions: message.versions ?? null,
      ignoreChanged: (patterns) => {
        toldIgnore = true;
        send({ type: 'ignore', patterns });
      },
      versionsChanged: (change) => send({ type: 'versions', change }),
      connection: (state) => send({ type: 'connection', state }),
    });
    await driver.start();
    digests = null; // used by the start-up scan alone
    // A driver that says nothing of patterns applies the setup's: the daemon is told so, and
    // stores them, before the entry is ready.
    if (!toldIgnore) send({ type: 'ignore', patterns: message.ignore ?? [] });
  } catch (err) {
    const reason = err instanceof DriverRefusal ? err.message : `driver failed to start: ${(err as Error).message}`;
    send({ type: 'fatal', reason });
    return stop(3);
  }
  send({ type: 'ready', pid: process.pid });
}

// Forked for an entry of this driver (argv[2]): its code is loaded now, while the daemon
// loads its own and before it sends `init`.
void drivers[process.argv[2] ?? '']?.load().catch(() => {});

/** The folder digests of the entry's replicas, which the daemon sends after `init` (the start-up scan waits for them). */
let gotDigests!: (digests: ReadonlyMap<string, string>) => void;
let digests: Promise<ReadonlyMap<string, string>> | null = new Promise((resolve) => (gotDigests = resolve));

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'init':
      void init(message);
      break;
    case 'digests':
      gotDigests(new Map(message.digests));
      break;
    case 'jobs': {
      if (!driver || stopping) return;
      for (const job of message.jobs) pending.push(job);
      // Started at once (a single file's latency); a slice under way goes on at its next turn.
      if (!draining) {
        draining = true;
        drain();
      }
      break;
    }
    case 'rescan': {
      if (!driver || stopping) return;
      const { id } = message;
      void (driver.rescan?.() ?? Promise.resolve()).then(
        () => send({ type: 'rescanned', id }),
        (err: Error) => {
          log('warn', `rescan failed: ${err.message}`);
          send({ type: 'rescanned', id });
        },
      );
      break;
    }
    case 'restore': {
      const { id, key } = message;
      if (!driver?.restore || stopping) {
        send({ type: 'restored', id, error: `the ${entry} driver cannot restore versions` });
        return;
      }
      void driver.restore(key).then(
        () => send({ type: 'restored', id, error: null }),
        (err: Error) => send({ type: 'restored', id, error: err.message, ...(err instanceof VersionMissing ? { missing: true } : {}) }),
      );
      break;
    }
    case 'stop':
      void stop(0);
      break;
  }
});

// The daemon died or closed the channel (even under SIGKILL): a worker never outlives it.
process.on('disconnect', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
