import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromCallback, type ActorSystem } from 'xstate';
import type { Logger } from 'pino';
import type { EntryEvent, EntryInput } from '../machines/entry.js';
import type { FromWorker, ToWorker } from './drivers/protocol.js';
import type { WorkerReport } from '../machines/reports.js';
import type { EntryConfig, SyncEngine } from './sync/engine.js';
import type { Catalogue } from './store/catalogue.js';
import type { EventLog } from './observe/event-log.js';
import type { TransferBoard } from './observe/transfer-board.js';

/**
 * Jobs one worker has at once: copies overlap, so the disk is never idle, and the jobs and
 * reports of many small files share each message and each catalogue transaction (a worker
 * reports what it finished every few hundred jobs, and is given as many new ones at once).
 * Large files are bounded by their bytes instead: a few at a time (and always one).
 */
const JOBS_IN_FLIGHT = 1024;
const BYTES_IN_FLIGHT = 128 << 20;
/** How long a worker has to exit after SIGTERM before its process group is killed. */
const KILL_AFTER_MS = 3000;

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
/** The worker's entry point; under a TypeScript runner (tests) it runs through tsx. */
export const WORKER_SCRIPT = path.join(path.dirname(here), 'drivers', fromSource ? 'worker-host.ts' : 'worker-host.js');
/**
 * Extra node options for every worker, space-separated (e.g. `--cpu-prof --cpu-prof-dir=DIR`,
 * which NODE_OPTIONS refuses): how the benchmark profiles the workers.
 */
const EXTRA_EXEC_ARGV = (process.env.FERRY_WORKER_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
/**
 * A worker allocates little that lives long but its maps of the files it watches: a small
 * young generation (2 MiB semi-spaces instead of 16) keeps some 20 MiB of RSS off each worker
 * at 100,000 files, for a few more (cheap) scavenges.
 */
const WORKER_V8_OPTIONS = ['--max-semi-space-size=2'];
const WORKER_EXEC_ARGV = [...(fromSource ? ['--import', 'tsx'] : []), ...WORKER_V8_OPTIONS, ...EXTRA_EXEC_ARGV];

export interface WorkerDeps {
  entries: ReadonlyMap<string, EntryConfig>;
  engine: SyncEngine;
  store: Catalogue;
  log: Logger;
  board: TransferBoard;
  events: EventLog;
  /** Every worker process ever started registers its exit here, so shutdown can await them. */
  track(exited: Promise<void>): void;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function isRunning(system: ActorSystem<any>, name: string): boolean {
  const actor = system.get(`entry:${name}`);
  return !!actor && actor.getSnapshot().matches({ active: 'running' });
}

/** Kills a worker's whole process group: SIGTERM, then SIGKILL if it lingers. */
function killGroup(child: ChildProcess, exited: Promise<void>): void {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), KILL_AFTER_MS);
  void exited.then(() => clearTimeout(timer));
}

/**
 * The `worker` actor of an entry: forks the driver's worker process, relays what it reports,
 * and feeds it the entry's queued jobs. Stopping the actor kills the process group.
 */
export function workerActor(deps: WorkerDeps) {
  return fromCallback<EntryEvent, EntryInput>(({ input, sendBack, receive, system }) => {
    const config = deps.entries.get(input.name)!;
    const log = deps.log.child({ entry: config.name });
    const inflight = new Set<number>();
    /** Bytes of the uploads in flight, by job. */
    const inflightBytes = new Map<number, number>();
    let bytesInFlight = 0;
    const landed = (jobId: number) => {
      inflight.delete(jobId);
      bytesInFlight -= inflightBytes.get(jobId) ?? 0;
      inflightBytes.delete(jobId);
    };
    let ready = false;
    let stopping = false;
    let failed = false;
    let alive = true;
    let dueTimer: NodeJS.Timeout | null = null;

    // A scan its previous worker left unfinished is forgotten: this one's starts afresh.
    deps.engine.workerStarted(config.name);
    const child = fork(WORKER_SCRIPT, [], {
      detached: true, // its own process group, killed as a whole
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: WORKER_EXEC_ARGV,
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    deps.track(exited);

    const send = (message: ToWorker) => {
      if (alive && child.connected) child.send(message);
    };

    /**
     * Rules that would delete most of the entry's files (a reload that bans it from them) stop
     * the entry, unless it was started with --force. Deletions made in another entry are
     * guarded where they are found: by that entry's rescan.
     */
    const massDeletion = (): string | null => {
      if (input.force) return null;
      const deletes = deps.store.countRuleDeletes(config.name);
      // No deletion is never a mass deletion: the count of the entry's files is not needed.
      if (deletes === 0) return null;
      const total = deps.store.countReplicas(config.name);
      if (!deps.engine.isMassDeletion(deletes, total)) return null;
      return (
        `the rules would delete ${deletes} of the ${total} files of ${config.name}; refusing ` +
        `(check the rules, then start it with --force to apply them)`
      );
    };

    const pump = () => {
      if (!ready || stopping || !alive) return;
      const refusal = massDeletion();
      if (refusal) {
        log.warn(refusal);
        stopping = true;
        sendBack({ type: 'entry.refuse', reason: refusal });
        return;
      }
      const free = JOBS_IN_FLIGHT - inflight.size;
      if (free > 0 && (bytesInFlight < BYTES_IN_FLIGHT || inflight.size === 0)) {
        const jobs = deps.engine.takeJobs(config.name, free, (n) => isRunning(system, n), inflight, BYTES_IN_FLIGHT - bytesInFlight);
        for (const job of jobs) {
          inflight.add(job.id);
          if (job.kind === 'upload') {
            inflightBytes.set(job.id, job.sourceStat.size);
            bytesInFlight += job.sourceStat.size;
          }
          deps.board.start(config.name, job);
        }
        if (jobs.length > 0) send({ type: 'jobs', jobs });
      }
      // Jobs waiting out a retry delay: come back when the first is due.
      const due = deps.store.nextDue(config.name);
      if (dueTimer) clearTimeout(dueTimer);
      dueTimer = null;
      if (due !== null && due > Date.now()) {
        dueTimer = setTimeout(pump, due - Date.now() + 5);
        dueTimer.unref();
      }
    };

    /**
     * A pump soon: every report of a batch the worker sent at once, and every `jobs.available`
     * they cause, lead to one pump (one query of the queue) instead of one each.
     */
    let pumpQueued = false;
    const pumpSoon = () => {
      if (pumpQueued) return;
      pumpQueued = true;
      queueMicrotask(() => {
        pumpQueued = false;
        pump();
      });
    };

    /**
     * The reports of one message, recorded straight into the engine in one catalogue
     * transaction (the finished jobs among them set-based); the rules actor would only pass
     * them on. The entries with new work are told, as the rules actor would tell them.
     */
    const record = (all: WorkerReport[]) => {
      // A worker on its way out may be replaced by the next one already: the scan it had begun
      // is left to the next one's, which would otherwise be mixed with it.
      const reports = stopping ? all.filter((r) => r.type !== 'scan.chunk' && r.type !== 'entry.scanned') : all;
      let finished = false;
      for (const report of reports) {
        // A worker speaks for its own entry only.
        report.entry = config.name;
        if (report.type === 'entry.scanned') report.force = input.force === true;
        if (report.type === 'job.finished') {
          finished = true;
          landed(report.jobId);
          const { outcome } = report;
          deps.board.finish(config.name, report.jobId, outcome.ok, !outcome.ok && outcome.reason === 'error');
        }
      }
      let result: ReturnType<SyncEngine['handleBatch']>;
      try {
        result = deps.store.grouped(() => deps.engine.handleBatch(reports));
      } catch (err) {
        // Nothing of the message was recorded: its jobs go back to the queue, to be done again.
        log.error({ err }, 'could not record what the worker reported');
        deps.engine.requeue(reports.flatMap((r) => (r.type === 'job.finished' ? [r.jobId] : [])));
        pumpSoon();
        return;
      }
      const { touched, refused } = result;
      if (refused) {
        log.warn({ entry: refused.entry, missing: refused.missing, total: refused.total }, refused.message);
        if (!stopping) sendBack({ type: 'entry.refuse', reason: refused.message });
      }
      for (const name of touched) {
        if (name === config.name) pumpSoon();
        else system.get(`entry:${name}`)?.send({ type: 'jobs.available' });
      }
      if (finished) pumpSoon();
    };

    child.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'log':
          log[message.level](message.fields ?? {}, message.msg);
          break;
        case 'fatal':
          failed = true;
          log.error(`refused to start: ${message.reason}`);
          if (!stopping) sendBack({ type: 'worker.failed', reason: message.reason });
          break;
        case 'ready':
          ready = true;
          log.info({ pid: message.pid }, 'worker ready');
          // Rules that would delete most of its files refuse the start itself, while it is still
          // starting (the API answers 409 with the reason): pump() says why and stops it.
          if (!stopping && massDeletion() === null) sendBack({ type: 'worker.ready', pid: message.pid });
          pump();
          break;
        case 'progress': {
          const t = deps.board.progress(config.name, message.jobId, message.bytes);
          if (t) {
            deps.events.emit({ type: 'progress', entry: config.name, job: t.id, path: t.filename, bytes: t.bytes, size: t.size });
          }
          break;
        }
        case 'watch':
          sendBack({ type: 'worker.watch', state: message.state });
          break;
        case 'connection':
          sendBack({ type: 'worker.connection', state: message.state });
          break;
        case 'rescanned':
          sendBack({ type: 'worker.rescanned', id: message.id });
          break;
        case 'conflict':
          deps.events.emit({ type: 'file', kind: 'conflict', entry: config.name, path: message.path, conflict: message.conflict });
          break;
        case 'reports':
          record(message.reports);
          break;
        case 'versions':
          try {
            deps.store.grouped(() => deps.store.versions.record(config.name, message.change));
          } catch (err) {
            log.error({ err }, 'could not record the versions the worker keeps');
          }
          break;
        case 'ignore': {
          // Before anything the worker reports under these patterns (its scan, its changes).
          let touched: string[] = [];
          try {
            touched = deps.store.grouped(() => deps.engine.setIgnore(config.name, message.patterns));
          } catch (err) {
            log.error({ err }, 'could not record the ignore patterns the worker applies');
          }
          for (const name of touched) {
            if (name === config.name) pumpSoon();
            else system.get(`entry:${name}`)?.send({ type: 'jobs.available' });
          }
          sendBack({ type: 'worker.ignore', patterns: message.patterns });
          break;
        }
        case 'restored':
          sendBack({ type: 'worker.restored', id: message.id, error: message.error, missing: message.missing === true });
          break;
      }
    });
    child.on('error', (err) => log.error({ err }, 'worker process error'));
    child.once('exit', (code, signal) => {
      alive = false;
      if (dueTimer) clearTimeout(dueTimer);
      if (inflight.size > 0) {
        deps.board.drop(config.name, inflight);
        deps.engine.requeue(inflight);
        inflight.clear();
        inflightBytes.clear();
        bytesInFlight = 0;
        // Another worker of this entry may be running already: it takes the requeued jobs.
        system.get(`entry:${config.name}`)?.send({ type: 'jobs.available' });
      }
      if (stopping || failed) return;
      log.warn({ code, signal }, 'worker exited unexpectedly');
      sendBack({ type: 'worker.exited', code, signal });
    });

    send({
      type: 'init',
      entry: config.name,
      driver: config.driver,
      options: config.resolved,
      knownFiles: deps.store.countReplicas(config.name),
      ignore: config.ignore ?? [],
      versions: config.versions ?? null,
    });

    receive((event) => {
      if (event.type === 'jobs.available') pumpSoon();
      if (event.type === 'worker.rescan') send({ type: 'rescan', id: event.id });
      if (event.type === 'worker.restore') send({ type: 'restore', id: event.id, key: event.key });
    });

    return () => {
      stopping = true;
      ready = false;
      if (dueTimer) clearTimeout(dueTimer);
      if (!alive) return;
      send({ type: 'stop' });
      killGroup(child, exited);
    };
  });
}
