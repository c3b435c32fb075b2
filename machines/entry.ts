import { assign, fromPromise, sendTo, setup, type CallbackActorLogic } from 'xstate';
import type { ConnectionState, VersionChange, WatchState, WorkerReport } from './reports.js';

/**
 * One entry: supervises the child process that runs the entry's driver, and dispatches the
 * entry's jobs to it.
 *
 * The worker is an invoked actor named `worker`: a process adapter that `src/` gives through
 * `.provide()` (a real child process). It turns the process's messages into `worker.*` events
 * and `worker.jobs`, `worker.rescan` and `worker.stop` into messages; it holds no job policy.
 * This machine holds it: how many jobs and bytes are in flight (bounded by `limits`), when the
 * next job waiting out its retry delay falls due, the check for a mass deletion before every
 * dispatch, and the draining of a worker that is asked to stop. What reads the store or the
 * clock (`takeJobs`, `massDeletionRefused`, `recordRefusal`, `requeueJobs`, `retryDue`…) is
 * given by src too.
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

/** How much one worker is given at once. */
export interface DispatchLimits {
  /** Jobs in flight at most. */
  jobs: number;
  /** Bytes of uploads in flight at most (one job is always let through, however large). */
  bytes: number;
}

/**
 * Jobs one worker has at once: copies overlap, so the disk is never idle, and the jobs and
 * reports of many small files share each message and each catalogue transaction (a worker
 * reports what it finished every few hundred jobs, and is given as many new ones at once).
 * Large files are bounded by their bytes instead: a few at a time (and always one).
 */
export const DISPATCH_LIMITS: DispatchLimits = { jobs: 1024, bytes: 128 << 20 };

export interface EntryInput {
  name: string;
  /** Whether this start was forced (given to the worker actor). */
  force?: boolean;
  /** In-flight limits; DISPATCH_LIMITS when not given. */
  limits?: DispatchLimits;
}

/**
 * A job as this machine sees it: an id, and the bytes an upload moves. src's job commands are
 * such objects, passed through to the worker as they are.
 */
export interface JobOrder {
  id: number;
  kind: string;
  sourceStat?: { size: number };
}

export interface TakeJobsInput {
  name: string;
  /** The entry was started with --force: the rules' deletions apply, however many. */
  force: boolean;
  /** Jobs to take at most (the free slots). */
  limit: number;
  /** Bytes of uploads to take at most (the first job is always taken). */
  maxBytes: number;
  /** Jobs in flight: not to be taken again. */
  inFlight: number[];
}

export interface TakenJobs {
  /**
   * Why nothing was taken: the rules would delete most of the entry's files (a reload that bans
   * it from them) and it was not started with --force. Null when jobs could be taken.
   */
  refusal: string | null;
  jobs: JobOrder[];
  /** When the first job waiting out its retry delay falls due (epoch ms); null when none waits. */
  nextDue: number | null;
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
  /** This start was forced: the worker applies mass deletions (forgotten when it stops). */
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
  limits: DispatchLimits;
  /** The jobs the worker has and has not reported finished: job id → bytes of its upload. */
  inflight: ReadonlyMap<number, number>;
  jobsInFlight: number;
  bytesInFlight: number;
  /** Something may be ready to dispatch (jobs were queued, or finished and freed slots). */
  dispatchAsked: boolean;
  /** When the first job waiting out its retry delay falls due (epoch ms), as of the last dispatch. */
  nextRetry: number | null;
  /** The worker drains to start again (entry.restart, or entry.start while draining), not to stop. */
  restart: { force: boolean } | null;
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
  /** What one message of the worker reported, in order: they go to the rules actor as one batch. */
  | { type: 'worker.reports'; reports: WorkerReport[] }
  /** Bytes of a running upload written so far. */
  | { type: 'worker.progress'; jobId: number; bytes: number }
  /** The entry's copy of `path` was kept as `conflict` before another version replaced it. */
  | { type: 'worker.conflict'; path: string; conflict: string }
  | { type: 'jobs.available' }
  /** Compare the whole storage with the store now (events the kernel dropped are found so). */
  | { type: 'entry.rescan' }
  /** Sent to the worker actor: the rescan numbered `id`. */
  | { type: 'worker.rescan'; id: number }
  /** Sent to the worker actor: jobs to run. */
  | { type: 'worker.jobs'; jobs: JobOrder[] }
  /** Sent to the worker actor: finish or abandon what you do, report it, and exit. */
  | { type: 'worker.stop' }
  | { type: 'worker.rescanned'; id: number }
  | { type: 'worker.watch'; state: WatchState }
  /** Put a version this entry keeps back in place (`key`: where its storage holds it). */
  | { type: 'entry.restore'; key: string }
  /** Sent to the worker actor: the restore numbered `id`. */
  | { type: 'worker.restore'; id: number; key: string }
  | ({ type: 'worker.restored' } & RestoreResult)
  /** The versions the worker kept or dropped: recorded in the store. */
  | { type: 'worker.versions'; change: VersionChange }
  /** The ignore patterns the worker applies (the setup's, then its storage's own): before its scan, and when they change. */
  | { type: 'worker.ignore'; patterns: string[] }
  | { type: 'worker.sampled'; sample: WorkerSample }
  /** A remote driver's connection to its server came up or went down (with why). */
  | { type: 'worker.connection'; state: ConnectionState };

/** Whether the worker may be given more: a slot is free and the bytes allow (one job always may go). */
const slotsFree = (c: EntryContext) => c.jobsInFlight < c.limits.jobs && (c.bytesInFlight < c.limits.bytes || c.jobsInFlight === 0);

const isScan = (r: WorkerReport) => r.type === 'scan.chunk' || r.type === 'entry.scanned';

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
    // Implemented in src/entry-actor.ts: takes due jobs of the entry from the store and marks
    // them running; resolves to them and to when the next job waiting out a retry falls due.
    // Without a store, there is nothing to take.
    takeJobs: fromPromise<TakenJobs, TakeJobsInput>(async () => ({ refusal: null, jobs: [], nextDue: null })),
  },
  delays: {
    // Grows with consecutive failures; implemented in src.
    backoff: 1000,
    // How long a worker must run before its start counts as stable.
    stableAfter: 10_000,
    // Until the first job waiting out its retry delay falls due (context.nextRetry); implemented in src.
    retryDue: 1000,
    // How long a worker asked to stop may take to exit before it is killed.
    drainTimeout: 4000,
  },
  guards: {
    slotsFree: ({ context }) => slotsFree(context),
    /** Jobs were queued or finished while a dispatch was under way: take again. */
    dispatchAsked: ({ context }) => context.dispatchAsked,
    // Implemented in src: the rules would delete most of the entry's files (and the start was not forced).
    massDeletionRefused: () => false,
    /** The dispatch found what massDeletionRefused finds at the start, and took nothing. */
    dispatchRefused: (_, params: { refusal: string | null }) => params.refusal !== null,
    retryWaiting: (_, params: { nextDue: number | null }) => params.nextDue !== null,
    restartAsked: ({ context }) => context.restart !== null,
  },
  actions: {
    forwardReports: sendTo(
      ({ system }) => system.get('rules'),
      ({ context }, params: { reports: WorkerReport[] }) => ({ type: 'reports.batch' as const, entry: context.name, reports: params.reports }),
    ),
    /**
     * The finished jobs among the reports leave the in-flight count. The rules actor, once it has
     * recorded them, tells the entry jobs.available: it dispatches then, seeing what they queued.
     */
    landJobs: assign(({ context }, params: { reports: WorkerReport[] }) => {
      let inflight: Map<number, number> | null = null;
      let jobs = context.jobsInFlight;
      let bytes = context.bytesInFlight;
      for (const report of params.reports) {
        if (report.type !== 'job.finished' || !context.inflight.has(report.jobId)) continue;
        inflight ??= new Map(context.inflight);
        const size = inflight.get(report.jobId);
        if (size === undefined) continue;
        bytes -= size;
        jobs -= 1;
        inflight.delete(report.jobId);
      }
      if (inflight === null) return {};
      return { inflight, jobsInFlight: jobs, bytesInFlight: bytes };
    }),
    askDispatch: assign({ dispatchAsked: true }),
    startDispatch: assign({ dispatchAsked: false }),
    /** The jobs taken are in flight: counted, with the bytes of their uploads. */
    holdJobs: assign(({ context }, params: TakenJobs) => {
      if (params.jobs.length === 0) return { nextRetry: params.nextDue };
      const inflight = new Map(context.inflight);
      let jobs = context.jobsInFlight;
      let bytes = context.bytesInFlight;
      for (const job of params.jobs) {
        if (inflight.has(job.id)) continue;
        const size = job.kind === 'upload' ? (job.sourceStat?.size ?? 0) : 0;
        inflight.set(job.id, size);
        bytes += size;
        jobs += 1;
      }
      return { inflight, jobsInFlight: jobs, bytesInFlight: bytes, nextRetry: params.nextDue };
    }),
    /** The jobs taken go to the worker, in one message (the adapter sends none for an empty take). */
    dispatchJobs: sendTo('worker', (_, params: TakenJobs) => ({ type: 'worker.jobs' as const, jobs: params.jobs })),
    // Implemented in src: jobs still in flight when the worker goes go back to the queue.
    requeueJobs: () => {},
    clearJobs: assign({ inflight: new Map(), jobsInFlight: 0, bytesInFlight: 0, dispatchAsked: false, nextRetry: null }),
    // Implemented in src (with the figures): why the start or the dispatch was refused.
    recordRefusal: assign({
      lastError: ({ context }) => `the rules would delete most of the files of ${context.name}; refusing (start it with --force to apply them)`,
    }),
    // Implemented in src: the transfer board and the event stream.
    showProgress: (_, _params: { jobId: number; bytes: number }) => {},
    showConflict: (_, _params: { path: string; conflict: string }) => {},
    sendStop: sendTo('worker', { type: 'worker.stop' }),
    askRestart: assign({ restart: (_, params: { force: boolean }) => params }),
    cancelRestart: assign({ restart: null }),
    applyRestart: assign(({ context }) => ({ force: context.restart?.force === true, restart: null })),
    askRescan: assign({ rescansAsked: ({ context }) => context.rescansAsked + 1 }),
    sendRescan: sendTo('worker', ({ context }) => ({ type: 'worker.rescan' as const, id: context.rescansAsked })),
    recordRescanned: assign({ rescansDone: ({ context }, params: { id: number }) => Math.max(context.rescansDone, params.id) }),
    recordWatch: assign({ watch: (_, params: { state: WatchState }) => params.state }),
    recordConnection: assign({ connection: (_, params: { state: ConnectionState }) => params.state }),
    askRestore: assign({ restoresAsked: ({ context }) => context.restoresAsked + 1 }),
    sendRestore: sendTo('worker', ({ context }, params: { key: string }) => ({ type: 'worker.restore' as const, id: context.restoresAsked, key: params.key })),
    recordRestored: assign({
      restored: ({ context }, params: RestoreResult) => [...context.restored, params].slice(-RESTORES_REMEMBERED),
    }),
    recordIgnore: assign({ ignore: (_, params: { patterns: string[] }) => params.patterns }),
    // Implemented in src: the sync engine applies the patterns (an entry never holds nor owns what
    // it ignores) before anything the worker reports under them, and stores them.
    applyIgnore: (_, _params: { patterns: string[] }) => {},
    // Implemented in src: the versions recorded in the store, which the API lists.
    recordVersions: (_, _params: { change: VersionChange }) => {},
    announceReady: sendTo(
      ({ system }) => system.get('rules'),
      ({ context }) => ({ type: 'entry.ready' as const, entry: context.name }),
    ),
    recordReady: assign((_, params: { pid: number }) => ({ pid: params.pid, startedAt: Date.now(), sample: null })),
    recordExit: assign(({ context }, params: { code: number | null; signal: string | null }) => ({
      restarts: context.restarts + 1,
      failures: context.failures + 1,
      lastError: `worker exited unexpectedly (${params.signal ? `signal ${params.signal}` : `code ${params.code}`})`,
      pid: null,
      startedAt: null,
      sample: null,
    })),
    /** A failure that is retried after the back-off: the store could not record, or could not dispatch. */
    recordSuspension: assign(({ context }, params: { reason: string }) => ({
      failures: context.failures + 1,
      lastError: params.reason,
      pid: null,
      startedAt: null,
      sample: null,
    })),
    recordFailure: assign((_, params: { reason: string }) => ({ lastError: params.reason, pid: null, startedAt: null, sample: null })),
    clearProcess: assign({ pid: null, startedAt: null, watch: null, sample: null, connection: null, restart: null }),
    recordSample: assign({ sample: (_, params: { sample: WorkerSample }) => params.sample }),
    clearError: assign({ lastError: null, failures: 0 }),
    recordForce: assign({ force: (_, params: { force: boolean }) => params.force }),
    clearForce: assign({ force: false }),
    markStable: assign({ failures: 0 }),
  },
}).createMachine({
  id: 'entry',
  description: 'An entry: one configured driver, run in its own supervised child process, and the dispatch of its jobs to it.',
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
    limits: input.limits ?? DISPATCH_LIMITS,
    inflight: new Map(),
    jobsInFlight: 0,
    bytesInFlight: 0,
    dispatchAsked: false,
    nextRetry: null,
    restart: null,
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
        'entry.start': {
          target: 'active',
          actions: ['clearError', { type: 'recordForce', params: ({ event }) => ({ force: event.force === true }) }],
        },
      },
    },
    active: {
      description: 'The worker process runs the driver: it watches the storage and runs jobs.',
      invoke: {
        id: 'worker',
        src: 'worker',
        input: ({ context }) => ({ name: context.name, force: context.force }),
        // The adapter could not start (the store refused to requeue the last worker's jobs).
        onError: {
          target: 'restarting',
          actions: { type: 'recordSuspension', params: ({ event }) => ({ reason: String((event.error as Error)?.message ?? event.error) }) },
        },
      },
      // Whatever the worker had and did not report goes back to the queue, for the next worker.
      exit: ['requeueJobs', 'clearJobs', 'clearForce'],
      initial: 'starting',
      states: {
        starting: {
          description: 'The worker is forked and rescans its root against the store; what it finds is recorded as it comes.',
          on: {
            'worker.ready': [
              {
                // Rules that would delete most of its files refuse the start itself, while it is
                // still starting: the API answers 409 with the reason.
                guard: 'massDeletionRefused',
                target: '#entry.stopped',
                actions: 'recordRefusal',
              },
              {
                target: 'running',
                actions: [{ type: 'recordReady', params: ({ event }) => ({ pid: event.pid }) }, 'announceReady'],
              },
            ],
          },
        },
        running: {
          description:
            'The worker is ready: changes are reported, jobs are dispatched to it within the in-flight limits; its process is sampled.',
          invoke: {
            id: 'sampler',
            src: 'sampler',
            input: ({ context }) => ({ pid: context.pid!, startedAt: context.startedAt! }),
          },
          after: {
            stableAfter: { actions: 'markStable' },
          },
          on: {
            'jobs.available': { actions: 'askDispatch' },
            'entry.rescan': { actions: ['askRescan', 'sendRescan'] },
            'entry.restore': { actions: ['askRestore', { type: 'sendRestore', params: ({ event }) => ({ key: event.key }) }] },
            'worker.rescanned': { actions: { type: 'recordRescanned', params: ({ event }) => ({ id: event.id }) } },
            'worker.sampled': { actions: { type: 'recordSample', params: ({ event }) => ({ sample: event.sample }) } },
          },
          initial: 'dispatching',
          states: {
            dispatching: {
              description:
                'Takes due jobs from the store, as many as the free slots and bytes allow, and sends them to the worker; rules that would delete most of its files (unless started with --force) stop the entry instead.',
              entry: 'startDispatch',
              invoke: {
                src: 'takeJobs',
                input: ({ context }) => ({
                  name: context.name,
                  force: context.force,
                  limit: context.limits.jobs - context.jobsInFlight,
                  maxBytes: context.limits.bytes - context.bytesInFlight,
                  inFlight: [...context.inflight.keys()],
                }),
                onDone: [
                  {
                    guard: { type: 'dispatchRefused', params: ({ event }) => ({ refusal: event.output.refusal }) },
                    target: '#entry.stopped',
                    actions: { type: 'recordFailure', params: ({ event }) => ({ reason: event.output.refusal ?? '' }) },
                  },
                  {
                    guard: 'dispatchAsked',
                    target: 'dispatching',
                    reenter: true,
                    actions: [
                      { type: 'holdJobs', params: ({ event }) => event.output },
                      { type: 'dispatchJobs', params: ({ event }) => event.output },
                    ],
                  },
                  {
                    guard: { type: 'retryWaiting', params: ({ event }) => ({ nextDue: event.output.nextDue }) },
                    target: 'backingOff',
                    actions: [
                      { type: 'holdJobs', params: ({ event }) => event.output },
                      { type: 'dispatchJobs', params: ({ event }) => event.output },
                    ],
                  },
                  {
                    target: 'waiting',
                    actions: [
                      { type: 'holdJobs', params: ({ event }) => event.output },
                      { type: 'dispatchJobs', params: ({ event }) => event.output },
                    ],
                  },
                ],
                // The store could not mark the jobs running: src has told the rules actor, which pauses every entry.
                onError: {
                  target: '#entry.restarting',
                  actions: { type: 'recordSuspension', params: ({ event }) => ({ reason: String((event.error as Error)?.message ?? event.error) }) },
                },
              },
            },
            waiting: {
              description:
                'Every slot is taken, or no job is due: jobs.available (jobs queued for it, or some of its own recorded finished) dispatches again.',
              on: {
                'jobs.available': { guard: 'slotsFree', target: 'dispatching' },
              },
            },
            backingOff: {
              description: 'As waiting, and a job waits out its retry delay: it is dispatched when it falls due (retryDue), or sooner.',
              on: {
                'jobs.available': { guard: 'slotsFree', target: 'dispatching' },
              },
              after: {
                retryDue: [{ guard: 'slotsFree', target: 'dispatching' }, { target: 'waiting' }],
              },
            },
          },
        },
        draining: {
          description:
            'The worker was asked to stop: it finishes or abandons its jobs in flight, and what it reports on its way out is recorded (a scan it had begun is left to the next start). Once it exits the entry stops, or starts again for a restart; one that lingers past drainTimeout is killed.',
          entry: 'sendStop',
          on: {
            'worker.reports': {
              actions: [
                { type: 'landJobs', params: ({ event }) => ({ reports: event.reports }) },
                { type: 'forwardReports', params: ({ event }) => ({ reports: event.reports.filter((r) => !isScan(r)) }) },
              ],
            },
            'worker.exited': [
              { guard: 'restartAsked', target: '#entry.active', reenter: true, actions: 'applyRestart' },
              { target: '#entry.stopped' },
            ],
            'entry.stop': { actions: 'cancelRestart' },
            'entry.start': { actions: { type: 'askRestart', params: ({ event }) => ({ force: event.force === true }) } },
            'entry.restart': { actions: { type: 'askRestart', params: { force: false } } },
            'entry.suspend': [
              {
                guard: 'restartAsked',
                target: '#entry.restarting',
                actions: { type: 'recordSuspension', params: ({ event }) => ({ reason: event.reason }) },
              },
              { target: '#entry.stopped', actions: { type: 'recordFailure', params: ({ event }) => ({ reason: event.reason }) } },
            ],
          },
          after: {
            drainTimeout: [
              { guard: 'restartAsked', target: '#entry.active', reenter: true, actions: 'applyRestart' },
              { target: '#entry.stopped' },
            ],
          },
        },
      },
      on: {
        'worker.reports': {
          actions: [
            { type: 'landJobs', params: ({ event }) => ({ reports: event.reports }) },
            { type: 'forwardReports', params: ({ event }) => ({ reports: event.reports }) },
          ],
        },
        'worker.progress': { actions: { type: 'showProgress', params: ({ event }) => ({ jobId: event.jobId, bytes: event.bytes }) } },
        'worker.conflict': { actions: { type: 'showConflict', params: ({ event }) => ({ path: event.path, conflict: event.conflict }) } },
        'worker.watch': { actions: { type: 'recordWatch', params: ({ event }) => ({ state: event.state }) } },
        'worker.connection': { actions: { type: 'recordConnection', params: ({ event }) => ({ state: event.state }) } },
        'worker.restored': {
          actions: { type: 'recordRestored', params: ({ event }) => ({ id: event.id, error: event.error, missing: event.missing }) },
        },
        'worker.versions': { actions: { type: 'recordVersions', params: ({ event }) => ({ change: event.change }) } },
        'worker.ignore': {
          actions: [
            { type: 'recordIgnore', params: ({ event }) => ({ patterns: event.patterns }) },
            { type: 'applyIgnore', params: ({ event }) => ({ patterns: event.patterns }) },
          ],
        },
        'worker.exited': {
          target: 'restarting',
          actions: { type: 'recordExit', params: ({ event }) => ({ code: event.code, signal: event.signal }) },
        },
        'entry.suspend': {
          target: 'restarting',
          actions: { type: 'recordSuspension', params: ({ event }) => ({ reason: event.reason }) },
        },
        'worker.failed': { target: 'stopped', actions: { type: 'recordFailure', params: ({ event }) => ({ reason: event.reason }) } },
        'entry.refuse': { target: 'stopped', actions: { type: 'recordFailure', params: ({ event }) => ({ reason: event.reason }) } },
        'entry.stop': { target: '.draining' },
        'entry.restart': { target: '.draining', actions: { type: 'askRestart', params: { force: false } } },
      },
    },
    restarting: {
      description:
        'The worker died unexpectedly, or the store could not record its changes; it is started again after a growing delay.',
      entry: 'cancelRestart',
      after: {
        backoff: { target: 'active' },
      },
      on: {
        'entry.start': { target: 'active', actions: { type: 'recordForce', params: ({ event }) => ({ force: event.force === true }) } },
        'entry.stop': { target: 'stopped' },
      },
    },
  },
});

export type EntryMachine = typeof entryMachine;
