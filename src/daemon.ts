import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { createActor, waitFor, type Actor, type AnyActorRef } from 'xstate';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import pidusage from 'pidusage';
import { daemonMachine } from '../machines/daemon.js';
import { isLoopback } from './api/access.js';
import { provideEntry } from './entry-actor.js';
import { provideRules } from './rules-actor.js';
import { validateRules } from './rules/validate.js';
import { checkPlaces, loadSetup, type Setup } from './setup.js';
import { Catalogue } from './store/catalogue.js';
import { DataDirLocked, lockDataDir, removeFreshDataDir, type DataDirLock } from './store/data-dir-lock.js';
import { SyncEngine, type EntryConfig } from './sync/engine.js';
import { storeFailure } from './store/store-failure.js';
import { EventLog } from './observe/event-log.js';
import { TransferBoard } from './observe/transfer-board.js';
import { statePath } from './observe/mermaid.js';
import type { SpareWorkers } from './worker-fork.js';

export interface DaemonOptions {
  setupFile: string;
  /** Where the store lives; defaults to `.ferry/` beside the setup file. */
  dataDir?: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  logger: Logger;
  /** Log every XState inspection event at debug level. */
  inspect?: boolean;
  /** Required as `Authorization: Bearer TOKEN` on every request; needed to bind a non-loopback host. */
  token?: string;
  /** The browser origin allowed to call the API. */
  cors?: string;
  /** Workers forked ahead for the entries (by `ferry start`); those left over are ended once started. */
  spares?: SpareWorkers;
}

/** A start refused for the way it was asked (exit 2), not for something that went wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Why the API could not bind, in one line; a busy or forbidden address is a refused start (exit 2). */
function listenError(err: unknown, host: string, port: number): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const why: Record<string, string> = {
    EADDRINUSE: 'address already in use (is another ferry running?)',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    EADDRNOTAVAIL: 'address not available on this machine',
  };
  const shown = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  if (code && code in why) return new UsageError(`cannot listen on ${shown}: ${why[code]}`);
  return err instanceof Error ? err : new Error(String(err));
}

export { storeFailure };

/** Back-off before restarting a worker that died: 0.5 s, 1 s, 2 s … capped at 15 s. */
export function restartDelay(failures: number): number {
  return Math.min(15_000, 500 * 2 ** Math.max(0, failures - 1));
}

/**
 * How long the start waits, once the workers are forked, for the first jobs (or every entry
 * started) before it loads the API: a start with nothing to copy waits this long, while its
 * workers walk their trees.
 */
const API_AFTER_MS = 250;

/** Resolves after `ms` (the timer does not keep the process alive). */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** The API's address as a URL. */
function urlOf(server: http.Server): string {
  const address = server.address();
  if (address === null || typeof address === 'string') return String(address);
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Starts an entry, and waits until its start is done (it is active, or stopped and says why). */
async function startEntry(root: Actor<typeof daemonMachine>, log: Logger, name: string): Promise<void> {
  const actor = root.system.get(`entry:${name}`)!;
  actor.send({ type: 'entry.start' });
  const snapshot = await waitFor(actor, (s) => !s.matches({ active: 'starting' }), { timeout: 60_000 }).catch(
    () => actor.getSnapshot(),
  );
  if (snapshot.matches('stopped')) log.error({ entry: name }, `entry did not start: ${snapshot.context.lastError}`);
}

/**
 * The composition root: setup (checked) → data dir lock → store → actor system → the port bound
 * → workers forked → the API (Fastify) answering on that port. `Daemon.start` returns once the
 * API answers and every entry has been started; a start refused before the workers (a bad setup,
 * a data dir or a port in use) leaves nothing behind.
 */
export class Daemon {
  private stopped: Promise<void> | null = null;

  private constructor(
    readonly setup: Setup,
    readonly store: Catalogue,
    readonly engine: SyncEngine,
    readonly root: Actor<typeof daemonMachine>,
    readonly app: FastifyInstance,
    readonly log: Logger,
    readonly events: EventLog,
    readonly board: TransferBoard,
    private readonly lock: DataDirLock,
    /** The exits of the workers forked so far. */
    private readonly workerExits: Set<Promise<void>>,
  ) {}

  static async start(options: DaemonOptions): Promise<Daemon> {
    const log = options.logger;
    const host = options.host ?? '127.0.0.1';
    if (!isLoopback(host) && !options.token) {
      throw new UsageError(
        `--host ${host} is reachable from other machines: give a token (--token or FERRY_TOKEN) that every request must present`,
      );
    }
    const setup = loadSetup(options.setupFile);
    const dataDir = path.resolve(options.dataDir ?? path.join(path.dirname(setup.file), '.ferry'));
    // Everything is checked before anything is created: a refused start leaves nothing behind.
    checkPlaces(setup, dataDir);
    let lock: DataDirLock;
    try {
      lock = lockDataDir(dataDir);
    } catch (err) {
      if (err instanceof DataDirLocked) throw new UsageError(err.message);
      throw err;
    }
    let store: Catalogue | undefined;
    try {
      store = new Catalogue(path.join(dataDir, 'ferry.db'));
      const daemon = await Daemon.compose(setup, store, lock, options, log);
      // Every entry that started took its worker: a spare left ends.
      options.spares?.release();
      return daemon;
    } catch (err) {
      store?.close();
      lock.release();
      try {
        removeFreshDataDir(dataDir, lock.created);
      } catch {
        // what is left is harmless
      }
      throw err;
    }
  }

  private static async compose(
    setup: Setup,
    store: Catalogue,
    lock: DataDirLock,
    options: DaemonOptions,
    log: Logger,
  ): Promise<Daemon> {
    const entries = new Map<string, EntryConfig>(setup.entries.map((e) => [e.name, e]));
    const names = new Set(entries.keys());
    store.requeueRunning();

    // The setup file shows the rules in force. Rules staged through the API survive a restart
    // unless they no longer fit the entries.
    const lastActive = store.rules('active');
    const lastStaged = store.rules('staged');
    const stagedStillValid = lastStaged !== null && validateRules(lastStaged, names).ok;
    const staged =
      stagedStillValid && !isDeepStrictEqual(lastStaged, lastActive) ? lastStaged! : setup.rules;
    const events = new EventLog();
    const board = new TransferBoard();
    const engine = new SyncEngine(store, entries, setup.rules, log, (event) => events.emit(event));
    engine.maxDeleteShare = setup.maxDeleteShare;
    if (!isDeepStrictEqual(lastActive, setup.rules)) {
      engine.applyRules(setup.rules);
      if (lastActive !== null) log.info('the rules in the setup file changed since the last run: applied to every known file');
    }
    store.putRules('staged', staged);

    /** The exits of the workers forked so far, awaited on stop. */
    const workerExits = new Set<Promise<void>>();
    let forked = 0;
    let allForked!: () => void;
    const everyWorkerForked = new Promise<void>((resolve) => (allForked = resolve));
    let jobsTaken!: () => void;
    const firstJobsTaken = new Promise<void>((resolve) => (jobsTaken = resolve));
    const provided = daemonMachine.provide({
      actions: {
        reportActorError: (_, { actor, error }) => {
          log.error({ actor, err: error instanceof Error ? error.message : String(error) }, `actor ${actor} failed; starting it again`);
          events.emit({ type: 'actor', actor, error: error instanceof Error ? error.message : String(error) });
        },
      },
      actors: {
        rules: provideRules({ engine, store, log, setupFile: setup.file }),
        entry: provideEntry({
          entries,
          engine,
          store,
          log,
          board,
          events,
          jobsTaken: () => jobsTaken(),
          track: (exited) => {
            workerExits.add(exited);
            void exited.then(() => workerExits.delete(exited));
            if (++forked === entries.size) allForked();
          },
          restartDelay,
          spares: options.spares,
        }),
      },
    });

    // Every state change of the rules and entry actors goes to the event stream.
    const lastState = new Map<string, string>();
    const root = createActor(provided, {
      input: { entries: [...entries.keys()], rules: { entries: [...entries.keys()], staged, active: setup.rules } },
      inspect: (inspection) => {
        const id = (inspection.actorRef as AnyActorRef).id;
        if (options.inspect) {
          log.debug(
            { inspection: inspection.type, actor: id, event: (inspection as { event?: { type?: string } }).event?.type },
            'xstate',
          );
        }
        if (inspection.type !== '@xstate.snapshot' || !(id === 'rules' || id.startsWith('entry:'))) return;
        const value = (inspection.snapshot as { value?: unknown }).value;
        // Two levels (`active.running`, `active.draining`): the dispatch's own states below
        // `running` change with every batch of jobs, and would drown the stream.
        const to = statePath(value).slice(0, 2).join('.');
        const from = lastState.get(id);
        if (from === to) return;
        lastState.set(id, to);
        events.emit({
          type: 'transition',
          actor: id,
          entry: id.startsWith('entry:') ? id.slice('entry:'.length) : null,
          from: from ?? null,
          to,
          event: inspection.event.type,
        });
      },
    });
    // The port is taken before any worker is forked (a busy port refuses the start with nothing
    // run), by a plain HTTP server: the workers are forked as soon as it listens, and Fastify is
    // loaded and its routes compiled while they start and scan. A request that comes meanwhile
    // waits for the API.
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 3862;
    const waiting: [IncomingMessage, ServerResponse][] = [];
    let handle: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;
    const server = http.createServer((req, res) => (handle ? handle(req, res) : waiting.push([req, res])));
    // Fastify's own defaults for a server it makes.
    server.keepAliveTimeout = 72_000;
    server.requestTimeout = 0;
    // A group commit that fails (a full disk) loses what it held: every entry pauses, as for a
    // batch that could not be recorded, and rescans when it starts again. Set before any worker
    // runs: their reports are committed while Fastify loads.
    store.onCommitFailure = (err) => {
      const failure = storeFailure(err) ?? `the store could not commit: ${(err as Error).message}`;
      log.error({ err: (err as Error).message }, failure);
      if (root.getSnapshot().status === 'active') root.system.get('rules')?.send({ type: 'store.failed', reason: failure });
    };
    // The actors exist (every entry stopped, no worker yet) before the first request can arrive.
    root.start();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      root.stop();
      throw listenError(err, host, port);
    }
    const url = urlOf(server);
    log.child({ component: 'api' }).info(`Server listening at ${url}`);
    const started = Promise.all([...entries.keys()].map((name) => startEntry(root, log, name)));
    // Loading Fastify holds the event loop for some 150 ms: every worker is forked first (an entry
    // that does not get one has finished starting), so that none waits for it to begin its scan;
    // then the first jobs go out, so that a first sync copies meanwhile. A start with nothing to
    // copy (its scans take longer: a no-change start) loads it while the workers walk their trees.
    await Promise.race([everyWorkerForked, started, delay(500)]);
    await Promise.race([firstJobsTaken, started, delay(API_AFTER_MS)]);

    let app: FastifyInstance;
    try {
      const { buildServer } = await import('./api/server.js');
      app = await buildServer(
        { system: root.system, entries, store, events, board, logger: log, token: options.token, cors: options.cors },
        (handler) => {
          handle = handler;
          return server;
        },
      );
      await app.ready();
    } catch (err) {
      handle = null;
      for (const [, res] of waiting.splice(0)) res.destroy();
      for (const name of entries.keys()) root.system.get(`entry:${name}`)?.send({ type: 'entry.stop' });
      await Promise.race([Promise.all([...workerExits]), delay(5000)]);
      root.stop();
      server.close();
      server.closeAllConnections();
      throw err;
    }
    for (const [req, res] of waiting.splice(0)) handle!(req, res);
    const daemon = new Daemon(setup, store, engine, root, app, log, events, board, lock, workerExits);
    await started;
    return daemon;
  }

  /** Says the daemon is running (once its signal handlers are set: see cli-start). */
  announce(): void {
    this.log.info({ url: this.url, setup: this.setup.file, entries: this.setup.entries.map((e) => e.name) }, 'ferry is running');
  }

  get url(): string {
    return urlOf(this.app.server);
  }

  /**
   * The folder digests of each local entry's replicas, which its next start compares its
   * listings with (see Catalogue.folderDigests), made now for the folders written since they
   * were last made: nothing else runs. Made at the next start, they took the daemon's CPU while
   * the workers walked their trees (the first start after a sync of 100,000 files per entry took
   * 4.3 s, the next ones 3.0 s). A failure leaves them to that start.
   */
  private digestForNextStart(): void {
    for (const entry of this.setup.entries) {
      if (entry.driver !== 'local_storage') continue;
      try {
        this.store.folderDigests(entry.name);
      } catch (err) {
        this.log.debug({ entry: entry.name, err: (err as Error).message }, 'folder digests left to the next start');
      }
    }
  }

  /** Stops the API, every worker (awaited), and closes the store. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      // Requests under way get a moment to finish; a connection that carries none (a client's
      // spare socket, which Node does not count as idle) would otherwise hold the close forever.
      const force = setTimeout(() => this.app.server.closeAllConnections(), 1000);
      await this.app.close().catch(() => {});
      // The server is the daemon's own (Fastify did not listen with it): closed here.
      await new Promise<void>((resolve) => this.app.server.close(() => resolve()));
      clearTimeout(force);
      // Workers go first, while the rules actor still records what they report: a copy they
      // finished on the way out is in the store, not redone (or a deletion undone) next start.
      for (const { name } of this.setup.entries) this.root.system.get(`entry:${name}`)?.send({ type: 'entry.stop' });
      await Promise.race([
        Promise.all([...this.workerExits]),
        delay(5000),
      ]);
      this.root.stop();
      pidusage.clear();
      this.digestForNextStart();
      this.store.close();
      this.lock.release();
      this.log.info('ferry stopped');
    })();
    return this.stopped;
  }
}
