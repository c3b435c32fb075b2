import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { createActor, fromPromise, waitFor, type Actor, type AnyActorRef } from 'xstate';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import pidusage from 'pidusage';
import { daemonMachine } from '../machines/daemon.js';
import { entryMachine } from '../machines/entry.js';
import { rulesMachine, type Rule, type RulesChange } from '../machines/rules.js';
import { buildServer } from './api/server.js';
import { isLoopback } from './api/access.js';
import { workerActor } from './entry-worker.js';
import { samplerActor } from './worker-sampler.js';
import { validateRules } from './rules/validate.js';
import { checkPlaces, loadSetup, writeSetupRules, type Setup } from './setup.js';
import { Catalogue } from './store/catalogue.js';
import { DataDirLocked, lockDataDir, removeFreshDataDir, type DataDirLock } from './store/data-dir-lock.js';
import { MassDeletionRefused, SyncEngine, type EntryConfig } from './sync/engine.js';
import { EventLog } from './observe/event-log.js';
import { TransferBoard } from './observe/transfer-board.js';
import { statePath } from './observe/mermaid.js';

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

/**
 * The reason to show when `err` is the store failing to write (a full disk, an I/O error, a
 * read-only or locked database), or null when it is anything else.
 */
export function storeFailure(err: unknown): string | null {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return null;
  const message = (err as Error).message;
  if (code.startsWith('SQLITE_FULL')) return `the store's disk is full: ${message}`;
  if (code.startsWith('SQLITE_IOERR')) return `the store's disk failed: ${message}`;
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_BUSY')) {
    return `the store cannot be written: ${message}`;
  }
  return null;
}

/** Back-off before restarting a worker that died: 0.5 s, 1 s, 2 s … capped at 15 s. */
export function restartDelay(failures: number): number {
  return Math.min(15_000, 500 * 2 ** Math.max(0, failures - 1));
}

/**
 * The composition root: setup (checked) → data dir lock → store → actor system → API (listening)
 * → workers. `Daemon.start` returns once the API listens and every entry has been started; a
 * start refused before that (a bad setup, a data dir or a port in use) leaves nothing behind.
 */
export class Daemon {
  private readonly workerExits = new Set<Promise<void>>();
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
      return await Daemon.compose(setup, store, lock, options, log);
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

    let daemon: Daemon | null = null;
    const provided = daemonMachine.provide({
      actions: {
        reportActorError: (_, { actor, error }) => {
          log.error({ actor, err: error instanceof Error ? error.message : String(error) }, `actor ${actor} failed; starting it again`);
          events.emit({ type: 'actor', actor, error: error instanceof Error ? error.message : String(error) });
        },
      },
      actors: {
        rules: rulesMachine.provide({
          actions: {
            recordReport: ({ event, self }) => {
              try {
                const touched = engine.handle(event as Parameters<SyncEngine['handle']>[0]);
                if (touched.length > 0) self.send({ type: 'jobs.queued', entries: touched });
              } catch (err) {
                if (err instanceof MassDeletionRefused) {
                  log.warn({ entry: err.entry, missing: err.missing, total: err.total }, err.message);
                  self.send({ type: 'entry.refused', entry: err.entry, reason: err.message });
                  return;
                }
                const failure = storeFailure(err);
                if (!failure) throw err;
                // Not recorded: the entries pause, and each rescans against the store when it
                // starts again, which finds what this report said.
                log.error({ err: (err as Error).message }, failure);
                self.send({ type: 'store.failed', reason: failure });
              }
            },
            persistStaged: ({ event }) => {
              store.putRules('staged', (event as { rules: Rule[] }).rules);
            },
          },
          actors: {
            previewRules: fromPromise<{ id: number; rules: Rule[]; changes: RulesChange[] }, { id: number; rules: Rule[] }>(
              async ({ input }) => ({ ...input, changes: engine.diff(input.rules) }),
            ),
            applyRules: fromPromise<string[], { rules: Rule[] }>(async ({ input }) => {
              // The setup file first: if it cannot be written, nothing has changed. If the store
              // then failed, the next start would see the file's rules differ and apply them.
              writeSetupRules(setup.file, input.rules);
              const touched = engine.applyRules(input.rules);
              store.putRules('staged', input.rules);
              log.info({ rules: input.rules.length }, 'rules reloaded');
              return touched;
            }),
          },
        }),
        entry: entryMachine.provide({
          actors: {
            worker: workerActor({
              entries,
              engine,
              store,
              log,
              board,
              events,
              track: (exited) => daemon!.track(exited),
            }),
            sampler: samplerActor(),
          },
          delays: {
            backoff: ({ context }) => restartDelay(context.failures),
          },
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
        const to = statePath(value).join('.');
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
    const app = await buildServer({
      system: root.system,
      entries,
      store,
      events,
      board,
      logger: log,
      token: options.token,
      cors: options.cors,
    });
    daemon = new Daemon(setup, store, engine, root, app, log, events, board, lock);
    // The actors exist (every entry stopped, no worker yet) before the first request can arrive.
    root.start();
    // The port is taken before any worker is forked: a busy port refuses the start with nothing run.
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 3862;
    try {
      await app.listen({ host, port });
    } catch (err) {
      root.stop();
      await app.close().catch(() => {});
      throw listenError(err, host, port);
    }
    await Promise.all([...entries.keys()].map((name) => daemon!.startEntry(name)));
    log.info({ url: daemon.url, setup: setup.file, entries: [...entries.keys()] }, 'ferry is running');
    return daemon;
  }

  get url(): string {
    const address = this.app.server.address();
    if (address === null || typeof address === 'string') return String(address);
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  private track(exited: Promise<void>): void {
    this.workerExits.add(exited);
    void exited.then(() => this.workerExits.delete(exited));
  }

  private async startEntry(name: string): Promise<void> {
    const actor = this.root.system.get(`entry:${name}`)!;
    actor.send({ type: 'entry.start' });
    const snapshot = await waitFor(actor, (s) => !s.matches({ active: 'starting' }), { timeout: 60_000 }).catch(
      () => actor.getSnapshot(),
    );
    if (snapshot.matches('stopped')) this.log.error({ entry: name }, `entry did not start: ${snapshot.context.lastError}`);
  }

  /** Stops the API, every worker (awaited), and closes the store. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      // Requests under way get a moment to finish; a connection that carries none (a client's
      // spare socket, which Node does not count as idle) would otherwise hold the close forever.
      const force = setTimeout(() => this.app.server.closeAllConnections(), 1000);
      await this.app.close().catch(() => {});
      clearTimeout(force);
      // Workers go first, while the rules actor still records what they report: a copy they
      // finished on the way out is in the store, not redone (or a deletion undone) next start.
      for (const { name } of this.setup.entries) this.root.system.get(`entry:${name}`)?.send({ type: 'entry.stop' });
      await Promise.race([
        Promise.all([...this.workerExits]),
        new Promise((resolve) => setTimeout(resolve, 5000).unref()),
      ]);
      this.root.stop();
      pidusage.clear();
      this.store.close();
      this.lock.release();
      this.log.info('ferry stopped');
    })();
    return this.stopped;
  }
}
