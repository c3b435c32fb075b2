import { assign, sendTo, setup, type CallbackActorLogic } from 'xstate';
import type { ConnectionState, WatchState, WorkerReport } from './reports.js';

/**
 * One entry: supervises the child process that runs the entry's driver.
 *
 * The worker is an invoked actor named `worker`; `src/` gives its implementation
 * (a real child process) and the back-off delay through `.provide()`.
 */

/** A sample of the worker process, taken every couple of seconds while it runs. */
export interface WorkerSample {
  /** The API's stats `info` (spec fields, and pid). */
  info: { age: number; cpu: number; create_time: number; ctime: string; mem: number; mem_info1: string; mem_info2: string; started: number; pid: number };
  /** Resident memory, bytes. */
  rss: number;
  /** CPU time used so far, seconds. */
  cpuSeconds: number;
}

export interface SamplerInput {
  pid: number;
  startedAt: number;
}

export interface EntryInput {
  name: string;
  /** Whether this start was forced (given to the worker actor). */
  force?: boolean;
}

export interface EntryContext {
  name: string;
  /** Times the worker died unexpectedly since the daemon started. */
  restarts: number;
  /** Unexpected exits since the worker last ran long enough to count as stable. */
  failures: number;
  lastError: string | null;
  pid: number | null;
  /** Epoch milliseconds at which the current worker reported itself ready. */
  startedAt: number | null;
  /** The last start was forced: the next worker applies mass deletions. */
  force: boolean;
  /** What the worker watches, and what it cannot (rescanned at an interval instead). */
  watch: WatchState | null;
  /** Whether a remote driver reaches its server (null: a local one, or not said yet). */
  connection: ConnectionState | null;
  /** Rescans asked of the worker, and the last of them done: each asked one has the next number. */
  rescansAsked: number;
  rescansDone: number;
  /** The last sample of the running worker (null until the first, and while none runs). */
  sample: WorkerSample | null;
  /** Restores of versions asked of the worker: each asked one has the next number. */
  restoresAsked: number;
  /** The last restores done, newest last: their number, and why one failed (`missing`: no such version). */
  restored: RestoreResult[];
  /** The ignore patterns the worker last said were in force (null until it says). */
  ignore: string[] | null;
}

export interface RestoreResult {
  id: number;
  error: string | null;
  missing: boolean;
}

/** How many restore results the context remembers: more than requests wait at once. */
const RESTORES_REMEMBERED = 32;

export type EntryEvent =
  /** `force`: apply what the start would otherwise refuse (mass deletions). */
  | { type: 'entry.start'; force?: boolean }
  | { type: 'entry.stop' }
  | { type: 'entry.restart' }
  | { type: 'worker.ready'; pid: number }
  | { type: 'worker.exited'; code: number | null; signal: string | null }
  | { type: 'worker.failed'; reason: string }
  /** The store cannot record changes: the worker is stopped and started again after a back-off. */
  | { type: 'entry.suspend'; reason: string }
  /** The rules actor refuses what the worker's rescan found (mass deletion): stop and say why. */
  | { type: 'entry.refuse'; reason: string }
  | { type: 'worker.report'; report: WorkerReport }
  | { type: 'jobs.available' }
  /** Compare the whole storage with the store now (events the kernel dropped are found so). */
  | { type: 'entry.rescan' }
  /** Sent to the worker actor: the rescan numbered `id`. */
  | { type: 'worker.rescan'; id: number }
  | { type: 'worker.rescanned'; id: number }
  | { type: 'worker.watch'; state: WatchState }
  /** Put a version this entry keeps back in place (`key`: where its storage holds it). */
  | { type: 'entry.restore'; key: string }
  /** Sent to the worker actor: the restore numbered `id`. */
  | { type: 'worker.restore'; id: number; key: string }
  | ({ type: 'worker.restored' } & RestoreResult)
  | { type: 'worker.ignore'; patterns: string[] }
  | { type: 'worker.sampled'; sample: WorkerSample }
  /** A remote driver's connection to its server came up or went down (with why). */
  | { type: 'worker.connection'; state: ConnectionState };

export const entryMachine = setup({
  types: {
    context: {} as EntryContext,
    events: {} as EntryEvent,
    input: {} as EntryInput,
  },
  actors: {
    // Implemented in src/entry-worker.ts: forks the driver's worker process.
    worker: {} as CallbackActorLogic<EntryEvent, EntryInput>,
    // Implemented in src/worker-sampler.ts: samples the worker process (CPU over the interval,
    // memory) every couple of seconds, so that the API reads stats from this snapshot.
    sampler: {} as CallbackActorLogic<EntryEvent, SamplerInput>,
  },
  delays: {
    // Grows with consecutive failures; implemented in src.
    backoff: 1000,
    // How long a worker must run before its start counts as stable.
    stableAfter: 10_000,
  },
  actions: {
    forwardToRules: sendTo(
      ({ system }) => system.get('rules'),
      ({ event }) => (event as Extract<EntryEvent, { type: 'worker.report' }>).report,
    ),
    forwardToWorker: sendTo('worker', ({ event }) => event),
    askRescan: assign({ rescansAsked: ({ context }) => context.rescansAsked + 1 }),
    sendRescan: sendTo('worker', ({ context }) => ({ type: 'worker.rescan' as const, id: context.rescansAsked })),
    recordRescanned: assign({
      rescansDone: ({ context, event }) => Math.max(context.rescansDone, (event as Extract<EntryEvent, { type: 'worker.rescanned' }>).id),
    }),
    recordWatch: assign({ watch: ({ event }) => (event as Extract<EntryEvent, { type: 'worker.watch' }>).state }),
    askRestore: assign({ restoresAsked: ({ context }) => context.restoresAsked + 1 }),
    sendRestore: sendTo('worker', ({ context, event }) => ({
      type: 'worker.restore' as const,
      id: context.restoresAsked,
      key: (event as Extract<EntryEvent, { type: 'entry.restore' }>).key,
    })),
    recordRestored: assign({
      restored: ({ context, event }) => {
        const { id, error, missing } = event as Extract<EntryEvent, { type: 'worker.restored' }>;
        return [...context.restored, { id, error, missing }].slice(-RESTORES_REMEMBERED);
      },
    }),
    recordIgnore: assign({ ignore: ({ event }) => (event as Extract<EntryEvent, { type: 'worker.ignore' }>).patterns }),
    recordConnection: assign({ connection: ({ event }) => (event as Extract<EntryEvent, { type: 'worker.connection' }>).state }),
    announceReady: sendTo(
      ({ system }) => system.get('rules'),
      ({ context }) => ({ type: 'entry.ready' as const, entry: context.name }),
    ),
    recordReady: assign(({ event }) => {
      const e = event as Extract<EntryEvent, { type: 'worker.ready' }>;
      return { pid: e.pid, startedAt: Date.now(), sample: null };
    }),
    recordExit: assign(({ context, event }) => {
      const e = event as Extract<EntryEvent, { type: 'worker.exited' }>;
      return {
        restarts: context.restarts + 1,
        failures: context.failures + 1,
        lastError: `worker exited unexpectedly (${e.signal ? `signal ${e.signal}` : `code ${e.code}`})`,
        pid: null,
        startedAt: null,
        sample: null,
      };
    }),
    recordSuspension: assign(({ context, event }) => ({
      failures: context.failures + 1,
      lastError: (event as Extract<EntryEvent, { type: 'entry.suspend' }>).reason,
      pid: null,
      startedAt: null,
      sample: null,
    })),
    recordFailure: assign(({ event }) => ({
      lastError: (event as Extract<EntryEvent, { type: 'worker.failed' | 'entry.refuse' }>).reason,
      pid: null,
      startedAt: null,
      sample: null,
    })),
    clearProcess: assign({ pid: null, startedAt: null, watch: null, sample: null, connection: null }),
    recordSample: assign({ sample: ({ event }) => (event as Extract<EntryEvent, { type: 'worker.sampled' }>).sample }),
    clearError: assign({ lastError: null, failures: 0 }),
    recordForce: assign({ force: ({ event }) => (event as Extract<EntryEvent, { type: 'entry.start' }>).force === true }),
    clearForce: assign({ force: false }),
    markStable: assign({ failures: 0 }),
  },
}).createMachine({
  id: 'entry',
  description: 'An entry: one configured driver, run in its own supervised child process.',
  context: ({ input }) => ({
    name: input.name,
    restarts: 0,
    failures: 0,
    lastError: null,
    pid: null,
    startedAt: null,
    force: false,
    watch: null,
    connection: null,
    rescansAsked: 0,
    rescansDone: 0,
    sample: null,
    restoresAsked: 0,
    restored: [],
    ignore: null,
  }),
  initial: 'stopped',
  states: {
    stopped: {
      description: 'No worker runs; jobs for this entry wait in the store until it starts.',
      entry: 'clearProcess',
      on: {
        'entry.start': { target: 'active', actions: ['clearError', 'recordForce'] },
      },
    },
    active: {
      description: 'The worker process runs the driver: it watches the storage and runs jobs.',
      invoke: {
        id: 'worker',
        src: 'worker',
        input: ({ context }) => ({ name: context.name, force: context.force }),
      },
      initial: 'starting',
      states: {
        starting: {
          description: 'The worker is forked and rescans its root against the store.',
          on: {
            'worker.ready': { target: 'running', actions: ['recordReady', 'announceReady', 'clearForce'] },
          },
        },
        running: {
          description: 'The worker is ready: changes are reported and jobs are dispatched to it; its process is sampled.',
          invoke: {
            id: 'sampler',
            src: 'sampler',
            input: ({ context }) => ({ pid: context.pid!, startedAt: context.startedAt! }),
          },
          after: {
            stableAfter: { actions: 'markStable' },
          },
          on: {
            'jobs.available': { actions: 'forwardToWorker' },
            'entry.rescan': { actions: ['askRescan', 'sendRescan'] },
            'entry.restore': { actions: ['askRestore', 'sendRestore'] },
            'worker.rescanned': { actions: 'recordRescanned' },
            'worker.sampled': { actions: 'recordSample' },
          },
        },
      },
      on: {
        'worker.report': { actions: 'forwardToRules' },
        'worker.watch': { actions: 'recordWatch' },
        'worker.restored': { actions: 'recordRestored' },
        'worker.ignore': { actions: 'recordIgnore' },
        'worker.connection': { actions: 'recordConnection' },
        'worker.exited': { target: 'restarting', actions: 'recordExit' },
        'entry.suspend': { target: 'restarting', actions: 'recordSuspension' },
        'worker.failed': { target: 'stopped', actions: 'recordFailure' },
        'entry.refuse': { target: 'stopped', actions: 'recordFailure' },
        'entry.stop': { target: 'stopped' },
        'entry.restart': { target: 'active', reenter: true },
      },
    },
    restarting: {
      description:
        'The worker died unexpectedly, or the store could not record its changes; it is started again after a growing delay.',
      after: {
        backoff: { target: 'active' },
      },
      on: {
        'entry.start': { target: 'active', actions: 'recordForce' },
        'entry.stop': { target: 'stopped' },
      },
    },
  },
});

export type EntryMachine = typeof entryMachine;
