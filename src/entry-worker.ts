import type { ChildProcess } from 'node:child_process';
import { fromCallback, type ActorSystem } from 'xstate';
import type { Logger } from 'pino';
import type { EntryEvent, EntryInput } from '../machines/entry.js';
import type { FromWorker, JobCommand, ToWorker } from './drivers/protocol.js';
import type { EntryConfig, SyncEngine } from './sync/engine.js';
import type { Catalogue } from './store/catalogue.js';
import { storeFailure } from './store/store-failure.js';
import type { TransferBoard } from './observe/transfer-board.js';
import { forkWorker, type SpareWorkers } from './worker-fork.js';

/** How long a worker has to exit after SIGTERM before its process group is killed. */
const KILL_AFTER_MS = 3000;

export interface WorkerDeps {
  entries: ReadonlyMap<string, EntryConfig>;
  engine: SyncEngine;
  store: Catalogue;
  log: Logger;
  board: TransferBoard;
  /** Every worker process ever started registers its exit here, so shutdown can await them. */
  track(exited: Promise<void>): void;
  /** Workers forked ahead (by `ferry start`), taken before forking new ones. */
  spares?: SpareWorkers;
}

/**
 * Whether the entry may serve as a copy's source: active, its worker running or starting. A
 * starting entry's scan records what it finds as it comes (the first sync of a tree is copied
 * while the tree is walked); each copy checks the source's stat against the version it copies.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function isRunning(system: ActorSystem<any>, name: string): boolean {
  const actor = system.get(`entry:${name}`);
  return !!actor && actor.getSnapshot().matches('active');
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
 * The `worker` actor of an entry: a process adapter. It forks the driver's worker process, turns
 * its messages into events for the entry actor (`worker.ready`, `worker.reports`,
 * `worker.progress`, `worker.exited` …) and the entry actor's `worker.jobs`, `worker.rescan` and
 * `worker.stop` into messages. What to give the worker, and when, is the entry machine's.
 * Stopping the actor kills the process group.
 */
export function workerActor(deps: WorkerDeps) {
  return fromCallback<EntryEvent, EntryInput>(({ input, sendBack, receive }) => {
    const config = deps.entries.get(input.name)!;
    const log = deps.log.child({ entry: config.name });
    /** The actor was stopped: the process is being killed, and nothing more goes to the machine. */
    let stopped = false;
    /** The machine asked the worker to stop: its exit is expected. */
    let asked = false;
    let alive = true;
    const tell = (event: EntryEvent) => {
      if (!stopped) sendBack(event);
    };

    // A scan its previous worker left unfinished is forgotten (this one's starts afresh), and the
    // jobs it had go back to the queue. If the store cannot take even that, the actor fails to
    // start: the entry machine tries again after its back-off.
    try {
      deps.engine.workerStarted(config.name);
    } catch (err) {
      throw new Error(storeFailure(err) ?? `could not prepare the worker: ${(err as Error).message}`, { cause: err });
    }
    const child = deps.spares?.take(config.driver) ?? forkWorker(config.driver);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    deps.track(exited);

    const send = (message: ToWorker) => {
      if (alive && child.connected) child.send(message);
    };
    /** Transfers shown as running that this worker will never finish. */
    const dropTransfers = () => deps.board.drop(config.name, deps.board.runningOf(config.name).map((t) => t.id));

    child.on('message', (message: FromWorker) => {
      switch (message.type) {
        case 'log':
          log[message.level](message.fields ?? {}, message.msg);
          break;
        case 'fatal':
          log.error(`refused to start: ${message.reason}`);
          tell({ type: 'worker.failed', reason: message.reason });
          break;
        case 'ready':
          log.info({ pid: message.pid }, 'worker ready');
          tell({ type: 'worker.ready', pid: message.pid });
          break;
        case 'progress':
          tell({ type: 'worker.progress', jobId: message.jobId, bytes: message.bytes });
          break;
        case 'watch':
          tell({ type: 'worker.watch', state: message.state });
          break;
        case 'connection':
          tell({ type: 'worker.connection', state: message.state });
          break;
        case 'rescanned':
          tell({ type: 'worker.rescanned', id: message.id });
          break;
        case 'conflict':
          tell({ type: 'worker.conflict', path: message.path, conflict: message.conflict });
          break;
        case 'versions':
          tell({ type: 'worker.versions', change: message.change });
          break;
        case 'ignore':
          tell({ type: 'worker.ignore', patterns: message.patterns });
          break;
        case 'restored':
          tell({ type: 'worker.restored', id: message.id, error: message.error, missing: message.missing === true });
          break;
        case 'reports': {
          if (stopped) break;
          for (const report of message.reports) {
            // A worker speaks for its own entry only.
            report.entry = config.name;
            if (report.type === 'entry.scanned') report.force = input.force === true;
            if (report.type === 'job.finished') {
              const { outcome } = report;
              deps.board.finish(config.name, report.jobId, outcome.ok, !outcome.ok && outcome.reason === 'error');
            }
          }
          // One event per message, however many reports it carries.
          tell({ type: 'worker.reports', reports: message.reports });
          break;
        }
      }
    });
    child.on('error', (err) => log.error({ err }, 'worker process error'));
    child.once('exit', (code, signal) => {
      alive = false;
      dropTransfers();
      if (stopped) return;
      if (asked) log.info({ code, signal }, 'worker stopped');
      else log.warn({ code, signal }, 'worker exited unexpectedly');
      tell({ type: 'worker.exited', code, signal });
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
    // The folder digests of what the store says the entry holds, for its start-up scan to leave
    // out unchanged folders: computed once every entry's worker is forked (a large tree the
    // store has not digested yet takes a while, and the workers walk their trees meanwhile).
    // The scan waits for them: none if they cannot be read (it lists every file).
    if (config.driver === 'local_storage') {
      setImmediate(() => {
        if (stopped || !alive) return;
        let digests: [string, string][] = [];
        try {
          digests = deps.engine.folderDigests(config.name);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'no folder digests for the start-up scan: it lists every file');
        }
        send({ type: 'digests', digests });
      });
    }

    receive((event) => {
      switch (event.type) {
        case 'worker.jobs': {
          const jobs = event.jobs as JobCommand[];
          if (jobs.length === 0) break;
          for (const job of jobs) deps.board.start(config.name, job);
          send({ type: 'jobs', jobs });
          break;
        }
        case 'worker.rescan':
          send({ type: 'rescan', id: event.id });
          break;
        case 'worker.restore':
          send({ type: 'restore', id: event.id, key: event.key });
          break;
        case 'worker.stop':
          asked = true;
          send({ type: 'stop' });
          break;
      }
    });

    return () => {
      stopped = true;
      if (!alive) return;
      dropTransfers();
      send({ type: 'stop' });
      killGroup(child, exited);
    };
  });
}
