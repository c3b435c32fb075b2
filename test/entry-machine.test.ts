import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { assign, createActor, fromCallback, fromPromise, setup, spawnChild, type AnyEventObject } from 'xstate';
import {
  DISPATCH_LIMITS,
  entryMachine,
  type DispatchLimits,
  type EntryEvent,
  type EntryInput,
  type JobOrder,
  type SamplerInput,
  type TakeJobsInput,
  type TakenJobs,
} from '../machines/entry.js';
import { rulesMachine } from '../machines/rules.js';
import { daemonMachine } from '../machines/daemon.js';
import type { WorkerReport } from '../machines/reports.js';

/** One started fake worker: what it was given, what it received, and whether it was stopped. */
interface FakeWorker {
  input: EntryInput;
  received: EntryEvent[];
  stopped: boolean;
  sendBack(event: EntryEvent): void;
}

/** A `worker` actor that runs no process: the test plays the process through `sendBack`. */
function fakeWorkers() {
  const workers: FakeWorker[] = [];
  const logic = fromCallback<EntryEvent, EntryInput>(({ input, sendBack, receive }) => {
    const worker: FakeWorker = { input, received: [], stopped: false, sendBack };
    workers.push(worker);
    receive((event) => worker.received.push(event));
    return () => {
      worker.stopped = true;
    };
  });
  return { workers, logic, last: () => workers[workers.length - 1]! };
}

/** A `sampler` that samples nothing: the test sends `worker.sampled` itself where it matters. */
const noSampler = fromCallback<EntryEvent, SamplerInput>(() => () => {});

/** A queued job of the fake store: due from `notBefore` (epoch ms). */
interface FakeJob extends JobOrder {
  notBefore: number;
}

/**
 * What src gives the dispatch, played by a queue in memory: `takeJobs` takes due jobs as the
 * engine does (up to the limit, uploads up to the bytes, the first always), `requeueJobs`
 * records what it was given back, `massDeletionRefused` answers `refuse`.
 */
function fakeStore() {
  const store = {
    queued: [] as FakeJob[],
    takes: [] as TakeJobsInput[],
    requeued: [] as number[][],
    refuse: null as string | null,
    upload(id: number, size: number, notBefore = 0) {
      store.queued.push({ id, kind: 'upload', sourceStat: { size }, notBefore });
    },
    remove(id: number, notBefore = 0) {
      store.queued.push({ id, kind: 'delete', notBefore });
    },
  };
  const takeJobs = fromPromise<TakenJobs, TakeJobsInput>(async ({ input }) => {
    store.takes.push(input);
    if (store.refuse !== null && !input.force) return { refusal: store.refuse, jobs: [], nextDue: null };
    const now = Date.now();
    const jobs: JobOrder[] = [];
    let bytes = 0;
    for (const job of [...store.queued]) {
      if (jobs.length >= input.limit || bytes >= input.maxBytes) break;
      if (job.notBefore > now || input.inFlight.includes(job.id)) continue;
      store.queued.splice(store.queued.indexOf(job), 1);
      const { notBefore: _, ...order } = job;
      jobs.push(order);
      if (job.kind === 'upload') bytes += job.sourceStat!.size;
    }
    const waiting = store.queued.map((j) => j.notBefore).filter((t) => t > now);
    return { refusal: null, jobs, nextDue: waiting.length > 0 ? Math.min(...waiting) : null };
  });
  /** The entry machine with these fakes, the given worker, and the given delays. */
  const provide = (worker: ReturnType<typeof fakeWorkers>['logic'], delays: { backoff?: number | ((a: { context: { failures: number } }) => number); stableAfter?: number; drainTimeout?: number } = {}) =>
    entryMachine.provide({
      actors: { worker, sampler: noSampler, takeJobs },
      guards: { massDeletionRefused: ({ context }) => store.refuse !== null && !context.force },
      actions: {
        requeueJobs: ({ context }) => {
          const ids = [...context.inflight.keys()];
          if (ids.length > 0) store.requeued.push(ids);
        },
        recordRefusal: assign({ lastError: () => store.refuse }),
      },
      delays: {
        ...delays,
        retryDue: ({ context }) => Math.max(0, (context.nextRetry ?? 0) - Date.now()),
      },
    });
  return { store, provide };
}

/** Lets the promise actors (takeJobs) settle: a few turns of the microtask queue. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

const BACKOFF_PER_FAILURE = 1000;
const STABLE_AFTER = 10_000;
const DRAIN_TIMEOUT = 4000;

function startEntry(options: { limits?: DispatchLimits } = {}) {
  const fake = fakeWorkers();
  const { store, provide } = fakeStore();
  const machine = provide(fake.logic, {
    backoff: ({ context }) => BACKOFF_PER_FAILURE * context.failures,
    stableAfter: STABLE_AFTER,
    drainTimeout: DRAIN_TIMEOUT,
  });
  const actor = createActor(machine, { input: { name: 'A', limits: options.limits } });
  actor.start();
  return { actor, store, ...fake };
}

/** The jobs the worker was sent, message by message (ids); an empty take sends the process nothing. */
const sentJobs = (worker: FakeWorker) =>
  worker.received
    .filter((e) => e.type === 'worker.jobs' && e.jobs.length > 0)
    .map((e) => (e as { jobs: JobOrder[] }).jobs.map((j) => j.id));

/**
 * The worker reports jobs finished, and the rules actor, having recorded them, tells the entry
 * jobs.available (as src's recordReports does for an entry whose jobs finished).
 */
function finish(actor: { send(e: EntryEvent): void }, worker: FakeWorker, ...ids: number[]): void {
  worker.sendBack({ type: 'worker.reports', reports: finished(...ids) });
  actor.send({ type: 'jobs.available' });
}

const finished = (...ids: number[]): WorkerReport[] =>
  ids.map((jobId) => ({ type: 'job.finished', entry: 'A', jobId, outcome: { ok: true, stat: { size: 1, mtime: 1, ino: null } } }));

/** Every state node under `node`, the node itself included. */
function allStates(node: { id: string; description?: string; states: Record<string, unknown> }): { id: string; description?: string }[] {
  return [node, ...Object.values(node.states).flatMap((child) => allStates(child as typeof node))];
}

describe('entry machine', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts stopped, with its name and clean counters', () => {
    const { actor, workers } = startEntry();
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('stopped');
    expect(snapshot.context).toEqual({
      name: 'A',
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
      limits: DISPATCH_LIMITS,
      inflight: new Map(),
      jobsInFlight: 0,
      bytesInFlight: 0,
      dispatchAsked: false,
      nextRetry: null,
      restart: null,
      restoresAsked: 0,
      restored: [],
      ignore: null,
    });
    expect(DISPATCH_LIMITS).toEqual({ jobs: 1024, bytes: 128 << 20 });
    expect(workers).toHaveLength(0);
  });

  it('starts the worker on entry.start and runs once it is ready', () => {
    vi.setSystemTime(new Date('2026-01-02T03:04:05Z'));
    const { actor, workers, last } = startEntry();

    actor.send({ type: 'entry.start' });
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(workers).toHaveLength(1);
    expect(last().input).toEqual({ name: 'A', force: false });
    expect(last().stopped).toBe(false);

    last().sendBack({ type: 'worker.ready', pid: 4242 });
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toEqual({ active: { running: 'dispatching' } });
    expect(snapshot.context.pid).toBe(4242);
    expect(snapshot.context.startedAt).toBe(Date.parse('2026-01-02T03:04:05Z'));
  });

  it('drains the worker on entry.stop: asked to stop, it is stopped once it exits', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 10 });

    actor.send({ type: 'entry.stop' });
    expect(actor.getSnapshot().value).toEqual({ active: 'draining' });
    expect(last().received).toContainEqual({ type: 'worker.stop' });
    expect(last().stopped).toBe(false);
    // Asked again while draining: accepted (the API answers once stopped), nothing more to do.
    expect(actor.getSnapshot().can({ type: 'entry.stop' })).toBe(true);

    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('stopped');
    expect(last().stopped).toBe(true);
    expect(snapshot.context.pid).toBeNull();
    expect(snapshot.context.startedAt).toBeNull();
    // An exit asked for is no failure.
    expect(snapshot.context).toMatchObject({ restarts: 0, failures: 0, lastError: null });
    expect(workers).toHaveLength(1);
  });

  it('drains a worker that is still starting on entry.stop', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    actor.send({ type: 'entry.stop' });
    expect(actor.getSnapshot().value).toEqual({ active: 'draining' });
    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(last().stopped).toBe(true);
  });

  it('stops a worker that lingers past drainTimeout (the adapter kills it)', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 10 });
    actor.send({ type: 'entry.stop' });
    vi.advanceTimersByTime(DRAIN_TIMEOUT - 1);
    expect(actor.getSnapshot().value).toEqual({ active: 'draining' });
    expect(last().stopped).toBe(false);
    vi.advanceTimersByTime(1);
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(last().stopped).toBe(true);
  });

  it('restarts a worker that exited, after the back-off delay', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 10 });

    last().sendBack({ type: 'worker.exited', code: 3, signal: null });
    let snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('restarting');
    expect(snapshot.context).toMatchObject({
      restarts: 1,
      failures: 1,
      lastError: 'worker exited unexpectedly (code 3)',
      pid: null,
      startedAt: null,
    });
    expect(workers[0]!.stopped).toBe(true);
    expect(workers).toHaveLength(1);

    // One failure: a back-off of 1 s.
    vi.advanceTimersByTime(BACKOFF_PER_FAILURE - 1);
    expect(actor.getSnapshot().value).toBe('restarting');
    expect(workers).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(workers).toHaveLength(2);
    expect(last().stopped).toBe(false);

    // A second exit, by a signal, before the worker ran long enough: the delay grows.
    last().sendBack({ type: 'worker.exited', code: null, signal: 'SIGKILL' });
    snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('restarting');
    expect(snapshot.context).toMatchObject({
      restarts: 2,
      failures: 2,
      lastError: 'worker exited unexpectedly (signal SIGKILL)',
    });
    vi.advanceTimersByTime(2 * BACKOFF_PER_FAILURE - 1);
    expect(actor.getSnapshot().value).toBe('restarting');
    vi.advanceTimersByTime(1);
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(workers).toHaveLength(3);
  });

  it('goes to active at once on entry.start while restarting', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });
    expect(actor.getSnapshot().value).toBe('restarting');

    actor.send({ type: 'entry.start' });
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(workers).toHaveLength(2);
    // Starting by hand does not forget the failure that is being recovered from.
    expect(actor.getSnapshot().context).toMatchObject({ restarts: 1, failures: 1 });

    // The back-off timer was cancelled with the state: it starts no third worker.
    vi.advanceTimersByTime(60_000);
    expect(workers).toHaveLength(2);
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
  });

  it('stops on entry.stop while restarting, and the back-off does not start it again', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });

    actor.send({ type: 'entry.stop' });
    expect(actor.getSnapshot().value).toBe('stopped');
    vi.advanceTimersByTime(60_000);
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(workers).toHaveLength(1);
  });

  it('stops with the reason on worker.failed, and does not restart', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.failed', reason: 'root /nope does not exist' });

    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('stopped');
    expect(snapshot.context.lastError).toBe('root /nope does not exist');
    expect(snapshot.context.restarts).toBe(0);
    expect(last().stopped).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(workers).toHaveLength(1);
  });

  it('stops with the reason on entry.refuse (a mass deletion refused), even once running', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 42 });
    actor.send({ type: 'entry.refuse', reason: 'the rescan of A finds 11 of its 20 files gone' });
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(actor.getSnapshot().context.lastError).toBe('the rescan of A finds 11 of its 20 files gone');
    expect(last().stopped).toBe(true);
  });

  it('gives the worker force only for a forced start, and forgets it once that worker stops', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start', force: true });
    expect(last().input).toEqual({ name: 'A', force: true });
    last().sendBack({ type: 'worker.ready', pid: 42 });
    // The worker's dispatches apply the deletions it was forced to: force lasts as long as it runs.
    expect(actor.getSnapshot().context.force).toBe(true);
    actor.send({ type: 'entry.restart' });
    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(last().input).toEqual({ name: 'A', force: false });
    expect(actor.getSnapshot().context.force).toBe(false);
  });

  it('takes entry.start while draining as a restart once the worker exits, with its force', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 42 });
    actor.send({ type: 'entry.stop' });
    expect(actor.getSnapshot().can({ type: 'entry.start' })).toBe(true);
    actor.send({ type: 'entry.start', force: true });
    expect(actor.getSnapshot().value).toEqual({ active: 'draining' });
    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(workers).toHaveLength(2);
    expect(last().input).toEqual({ name: 'A', force: true });
    // A stop asked afterwards, while draining, wins over the restart asked before it.
    actor.send({ type: 'entry.restart' });
    actor.send({ type: 'entry.stop' });
    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(workers).toHaveLength(2);
  });

  it('clears the last error and the failures on entry.start from stopped', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });
    actor.send({ type: 'entry.stop' });
    expect(actor.getSnapshot().context).toMatchObject({ restarts: 1, failures: 1 });
    expect(actor.getSnapshot().context.lastError).not.toBeNull();

    actor.send({ type: 'entry.start' });
    expect(actor.getSnapshot().context).toMatchObject({ restarts: 1, failures: 0, lastError: null });
  });

  it('drains the worker on entry.restart, then re-enters active with a new one', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 10 });
    expect(actor.getSnapshot().matches({ active: 'running' })).toBe(true);

    actor.send({ type: 'entry.restart' });
    expect(actor.getSnapshot().value).toEqual({ active: 'draining' });
    expect(workers[0]!.received).toContainEqual({ type: 'worker.stop' });
    expect(workers).toHaveLength(1);
    workers[0]!.sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(workers).toHaveLength(2);
    expect(workers[0]!.stopped).toBe(true);
    expect(workers[1]!.stopped).toBe(false);
    expect(actor.getSnapshot().context.restarts).toBe(0);

    workers[1]!.sendBack({ type: 'worker.ready', pid: 11 });
    expect(actor.getSnapshot().matches({ active: 'running' })).toBe(true);
    expect(actor.getSnapshot().context.pid).toBe(11);
  });

  it('accepts only the events that fit its state (snapshot.can)', () => {
    const { actor, last } = startEntry();
    const can = (type: 'entry.start' | 'entry.stop' | 'entry.restart') => actor.getSnapshot().can({ type });

    // stopped
    expect(can('entry.start')).toBe(true);
    expect(can('entry.stop')).toBe(false);
    expect(can('entry.restart')).toBe(false);

    // active.starting
    actor.send({ type: 'entry.start' });
    expect(can('entry.start')).toBe(false);
    expect(can('entry.stop')).toBe(true);
    expect(can('entry.restart')).toBe(true);

    // active.running
    last().sendBack({ type: 'worker.ready', pid: 1 });
    expect(can('entry.start')).toBe(false);
    expect(can('entry.stop')).toBe(true);
    expect(can('entry.restart')).toBe(true);
    expect(actor.getSnapshot().can({ type: 'entry.rescan' })).toBe(true);

    // active.draining: a start or restart waits for the exit; no rescan
    actor.send({ type: 'entry.stop' });
    expect(can('entry.start')).toBe(true);
    expect(can('entry.stop')).toBe(true);
    expect(can('entry.restart')).toBe(true);
    expect(actor.getSnapshot().can({ type: 'entry.rescan' })).toBe(false);
    actor.send({ type: 'entry.restart' });
    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    last().sendBack({ type: 'worker.ready', pid: 2 });

    // restarting
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });
    expect(actor.getSnapshot().value).toBe('restarting');
    expect(can('entry.start')).toBe(true);
    expect(can('entry.stop')).toBe(true);
    expect(can('entry.restart')).toBe(false);
  });

  it('resets the failures once the worker has run for stableAfter', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });
    vi.advanceTimersByTime(BACKOFF_PER_FAILURE);
    last().sendBack({ type: 'worker.ready', pid: 2 });
    expect(actor.getSnapshot().matches({ active: 'running' })).toBe(true);
    expect(actor.getSnapshot().context.failures).toBe(1);

    vi.advanceTimersByTime(STABLE_AFTER - 1);
    expect(actor.getSnapshot().context.failures).toBe(1);
    vi.advanceTimersByTime(1);
    expect(actor.getSnapshot().matches({ active: 'running' })).toBe(true);
    expect(actor.getSnapshot().context.failures).toBe(0);
    // The restarts since the daemon started are a history: they stay.
    expect(actor.getSnapshot().context.restarts).toBe(1);
  });

  it('keeps counting failures when the worker dies before it is stable', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 1 });
    vi.advanceTimersByTime(STABLE_AFTER / 2);
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });
    vi.advanceTimersByTime(BACKOFF_PER_FAILURE);
    last().sendBack({ type: 'worker.ready', pid: 2 });
    vi.advanceTimersByTime(STABLE_AFTER / 2);
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });
    expect(actor.getSnapshot().context).toMatchObject({ restarts: 2, failures: 2 });
  });

  it('does not count the time spent starting toward stableAfter', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.exited', code: 1, signal: null });
    vi.advanceTimersByTime(BACKOFF_PER_FAILURE);
    // A slow scan: the worker is not ready for a long time.
    vi.advanceTimersByTime(STABLE_AFTER * 3);
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(actor.getSnapshot().context.failures).toBe(1);
  });

  describe('dispatch', () => {
    it('dispatches on entering running, fills the free slots, and stops at the job limit', async () => {
      const { actor, store, last } = startEntry({ limits: { jobs: 3, bytes: 1000 } });
      for (let id = 1; id <= 5; id++) store.remove(id);
      actor.send({ type: 'jobs.available' }); // stopped: nobody to give jobs to, ignored
      actor.send({ type: 'entry.start' });
      actor.send({ type: 'jobs.available' }); // starting: the worker gets jobs once ready
      await settle();
      expect(store.takes).toEqual([]);

      last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      expect(store.takes).toEqual([{ name: 'A', force: false, limit: 3, maxBytes: 1000, inFlight: [] }]);
      expect(sentJobs(last())).toEqual([[1, 2, 3]]);
      let snapshot = actor.getSnapshot();
      expect(snapshot.value).toEqual({ active: { running: 'waiting' } });
      expect(snapshot.context).toMatchObject({ jobsInFlight: 3, bytesInFlight: 0, inflight: new Map([[1, 0], [2, 0], [3, 0]]) });

      // Every slot taken: more jobs queued elsewhere are not asked for.
      actor.send({ type: 'jobs.available' });
      await settle();
      expect(store.takes).toHaveLength(1);
      expect(actor.getSnapshot().context.dispatchAsked).toBe(true);

      // Two finish, in one message: two slots free; once recorded, one dispatch fills them.
      last().sendBack({ type: 'worker.reports', reports: finished(1, 2) });
      await settle();
      expect(store.takes).toHaveLength(1);
      expect(actor.getSnapshot().context.jobsInFlight).toBe(1);
      actor.send({ type: 'jobs.available' });
      await settle();
      expect(store.takes.at(-1)).toEqual({ name: 'A', force: false, limit: 2, maxBytes: 1000, inFlight: [3] });
      expect(sentJobs(last())).toEqual([[1, 2, 3], [4, 5]]);
      snapshot = actor.getSnapshot();
      expect(snapshot.context).toMatchObject({ jobsInFlight: 3, inflight: new Map([[3, 0], [4, 0], [5, 0]]), dispatchAsked: false });

      // A finished job it does not know (reported twice) changes nothing.
      last().sendBack({ type: 'worker.reports', reports: finished(1) });
      await settle();
      expect(actor.getSnapshot().context.jobsInFlight).toBe(3);
      expect(store.takes).toHaveLength(2);
      expect(actor.getSnapshot().context.dispatchAsked).toBe(false);
    });

    it('bounds the bytes of uploads in flight, and lets one large upload through', async () => {
      const { actor, store, last } = startEntry({ limits: { jobs: 100, bytes: 100 } });
      store.upload(1, 500); // larger than the limit: goes alone
      store.upload(2, 60);
      store.upload(3, 60);
      store.upload(4, 60);
      actor.send({ type: 'entry.start' });
      last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      expect(sentJobs(last())).toEqual([[1]]);
      expect(actor.getSnapshot().context).toMatchObject({ jobsInFlight: 1, bytesInFlight: 500 });

      actor.send({ type: 'jobs.available' });
      await settle();
      expect(store.takes).toHaveLength(1); // over the bytes: nothing more asked for

      finish(actor, last(), 1);
      await settle();
      // Uploads up to the 100 bytes free, the first always: 60, then 60 more.
      expect(store.takes.at(-1)).toMatchObject({ limit: 100, maxBytes: 100 });
      expect(sentJobs(last())).toEqual([[1], [2, 3]]);
      expect(actor.getSnapshot().context).toMatchObject({ jobsInFlight: 2, bytesInFlight: 120 });

      finish(actor, last(), 2);
      await settle();
      expect(store.takes.at(-1)).toMatchObject({ maxBytes: 40, inFlight: [3] });
      expect(sentJobs(last())).toEqual([[1], [2, 3], [4]]);
      expect(actor.getSnapshot().context).toMatchObject({ jobsInFlight: 2, bytesInFlight: 120 });
    });

    it('dispatches a job waiting out its retry delay when it falls due (retryDue)', async () => {
      vi.setSystemTime(new Date('2026-01-02T03:04:05Z'));
      const { actor, store, last } = startEntry();
      const due = Date.now() + 5000;
      store.remove(1, due);
      actor.send({ type: 'entry.start' });
      last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      expect(sentJobs(last())).toEqual([]);
      expect(actor.getSnapshot().value).toEqual({ active: { running: 'backingOff' } });
      expect(actor.getSnapshot().context.nextRetry).toBe(due);

      await vi.advanceTimersByTimeAsync(4999);
      expect(store.takes).toHaveLength(1);
      expect(actor.getSnapshot().value).toEqual({ active: { running: 'backingOff' } });
      await vi.advanceTimersByTimeAsync(1);
      await settle();
      expect(store.takes).toHaveLength(2);
      expect(sentJobs(last())).toEqual([[1]]);
      expect(actor.getSnapshot().value).toEqual({ active: { running: 'waiting' } });
      expect(actor.getSnapshot().context.nextRetry).toBeNull();
    });

    it('comes back to a retry after other work, and leaves it for later when every slot is taken', async () => {
      vi.setSystemTime(new Date('2026-01-02T03:04:05Z'));
      const { actor, store, last } = startEntry({ limits: { jobs: 1, bytes: 1000 } });
      store.remove(1);
      store.remove(2, Date.now() + 1000);
      actor.send({ type: 'entry.start' });
      last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      expect(sentJobs(last())).toEqual([[1]]);
      expect(actor.getSnapshot().value).toEqual({ active: { running: 'backingOff' } });
      // Due while the one slot is taken: it waits for the slot.
      await vi.advanceTimersByTimeAsync(1000);
      await settle();
      expect(store.takes).toHaveLength(1);
      expect(actor.getSnapshot().value).toEqual({ active: { running: 'waiting' } });
      finish(actor, last(), 1);
      await settle();
      expect(sentJobs(last())).toEqual([[1], [2]]);
    });

    it('puts back the jobs in flight of a worker that dies, and of one that stops without reporting them', async () => {
      const { actor, store, last } = startEntry();
      for (let id = 1; id <= 3; id++) store.remove(id);
      actor.send({ type: 'entry.start' });
      last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      last().sendBack({ type: 'worker.reports', reports: finished(2) });
      last().sendBack({ type: 'worker.exited', code: null, signal: 'SIGKILL' });
      expect(actor.getSnapshot().value).toBe('restarting');
      expect(store.requeued).toEqual([[1, 3]]);
      expect(actor.getSnapshot().context).toMatchObject({ inflight: new Map(), jobsInFlight: 0, bytesInFlight: 0 });

      vi.advanceTimersByTime(BACKOFF_PER_FAILURE);
      store.remove(4);
      last().sendBack({ type: 'worker.ready', pid: 2 });
      await settle();
      expect(sentJobs(last())).toEqual([[4]]);
      actor.send({ type: 'entry.stop' });
      last().sendBack({ type: 'worker.exited', code: 0, signal: null });
      expect(store.requeued).toEqual([[1, 3], [4]]);
    });

    it('refuses a start whose rules would delete most of the files: stopped with the reason, never running', async () => {
      const { actor, store, last } = startEntry();
      store.refuse = 'the rules would delete 11 of the 20 files of A; refusing';
      store.remove(1);
      actor.send({ type: 'entry.start' });
      last().sendBack({ type: 'worker.ready', pid: 1 });
      const snapshot = actor.getSnapshot();
      expect(snapshot.value).toBe('stopped');
      expect(snapshot.context.lastError).toBe('the rules would delete 11 of the 20 files of A; refusing');
      expect(last().stopped).toBe(true);
      await settle();
      expect(store.takes).toEqual([]);
    });

    it('a forced start applies the deletions, for as long as its worker runs', async () => {
      const { actor, store, last } = startEntry();
      store.refuse = 'the rules would delete 11 of the 20 files of A; refusing';
      store.remove(1);
      actor.send({ type: 'entry.start', force: true });
      last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      expect(sentJobs(last())).toEqual([[1]]);
      expect(store.takes.at(-1)).toMatchObject({ force: true });
      store.remove(2);
      actor.send({ type: 'jobs.available' });
      await settle();
      expect(sentJobs(last())).toEqual([[1], [2]]);
      expect(actor.getSnapshot().matches({ active: 'running' })).toBe(true);
    });

    it('checks for a mass deletion before every dispatch: rules reloaded meanwhile stop it with the reason', async () => {
      const { actor, store, last } = startEntry();
      store.remove(1);
      actor.send({ type: 'entry.start' });
      last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      expect(sentJobs(last())).toEqual([[1]]);

      store.refuse = 'the rules would delete 30 of the 40 files of A; refusing';
      store.remove(2);
      actor.send({ type: 'jobs.available' });
      await settle();
      const snapshot = actor.getSnapshot();
      expect(snapshot.value).toBe('stopped');
      expect(snapshot.context.lastError).toBe('the rules would delete 30 of the 40 files of A; refusing');
      expect(sentJobs(last())).toEqual([[1]]);
      expect(store.requeued).toEqual([[1]]);
      expect(last().stopped).toBe(true);
    });

    it('goes to restarting with the reason when the store cannot give jobs (takeJobs fails)', async () => {
      const fake = fakeWorkers();
      const machine = entryMachine.provide({
        actors: {
          worker: fake.logic,
          sampler: noSampler,
          takeJobs: fromPromise<TakenJobs, TakeJobsInput>(async () => {
            throw new Error("the store's disk is full: database or disk is full");
          }),
        },
        delays: { backoff: 1000 },
      });
      const actor = createActor(machine, { input: { name: 'A' } }).start();
      actor.send({ type: 'entry.start' });
      fake.last().sendBack({ type: 'worker.ready', pid: 1 });
      await settle();
      expect(actor.getSnapshot().value).toBe('restarting');
      expect(actor.getSnapshot().context).toMatchObject({ failures: 1, lastError: "the store's disk is full: database or disk is full" });
      expect(fake.last().stopped).toBe(true);
    });
  });

  it("keeps a remote driver's connection state while its worker runs, and forgets it once stopped", () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    const down = { endpoint: 'sftp 127.0.0.1:2222', connected: false, reason: 'connection refused' };
    last().sendBack({ type: 'worker.connection', state: down });
    expect(actor.getSnapshot().context.connection).toEqual(down);
    last().sendBack({ type: 'worker.ready', pid: 1 });
    const up = { endpoint: 'sftp 127.0.0.1:2222', connected: true, reason: null };
    last().sendBack({ type: 'worker.connection', state: up });
    expect(actor.getSnapshot().context.connection).toEqual(up);
    actor.send({ type: 'entry.stop' });
    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(actor.getSnapshot().context.connection).toBeNull();
  });

  it('numbers restores and sends them to the worker only while running; keeps their results, applies and keeps the ignore patterns, records versions', async () => {
    const fake = fakeWorkers();
    const { provide } = fakeStore();
    const applied: string[][] = [];
    const recorded: unknown[] = [];
    const machine = provide(fake.logic).provide({
      actions: {
        applyIgnore: (_, params) => void applied.push(params.patterns),
        recordVersions: (_, params) => void recorded.push(params.change),
      },
    });
    const actor = createActor(machine, { input: { name: 'A' } });
    actor.start();
    const { last } = fake;
    const restore = { type: 'entry.restore', key: 'a.txt/20261129-083001-123.deleted' } as const;
    expect(actor.getSnapshot().can(restore)).toBe(false);
    actor.send({ type: 'entry.start' });
    expect(actor.getSnapshot().can(restore)).toBe(false);
    // The patterns come before the scan: applied at once, while starting.
    last().sendBack({ type: 'worker.ignore', patterns: ['*.log'] });
    expect(applied).toEqual([['*.log']]);
    const change = { kept: [{ key: restore.key, filename: 'a.txt', time: 1, size: 2, reason: 'deleted' as const }], dropped: [], full: true };
    last().sendBack({ type: 'worker.versions', change });
    expect(recorded).toEqual([change]);
    last().sendBack({ type: 'worker.ready', pid: 1 });
    await settle();
    expect(actor.getSnapshot().can(restore)).toBe(true);
    actor.send(restore);
    actor.send(restore);
    expect(last().received.filter((e) => e.type === 'worker.restore')).toEqual([
      { type: 'worker.restore', id: 1, key: restore.key },
      { type: 'worker.restore', id: 2, key: restore.key },
    ]);
    last().sendBack({ type: 'worker.restored', id: 2, error: null, missing: false });
    last().sendBack({ type: 'worker.restored', id: 1, error: 'no version a.txt/…', missing: true });
    expect(actor.getSnapshot().context).toMatchObject({
      restoresAsked: 2,
      restored: [
        { id: 2, error: null, missing: false },
        { id: 1, error: 'no version a.txt/…', missing: true },
      ],
      ignore: ['*.log'],
    });
    // The patterns stay known once stopped (the API shows the last ones).
    actor.send({ type: 'entry.stop' });
    last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(actor.getSnapshot().context.ignore).toEqual(['*.log']);
  });

  it('samples the worker only while it runs, and keeps the last sample in its context', () => {
    const samplers: { input: unknown; stopped: boolean; sendBack: (e: EntryEvent) => void }[] = [];
    const fake = fakeWorkers();
    const machine = entryMachine.provide({
      actors: {
        worker: fake.logic,
        sampler: fromCallback<EntryEvent, { pid: number; startedAt: number }>(({ input, sendBack }) => {
          const s = { input, stopped: false, sendBack };
          samplers.push(s);
          return () => void (s.stopped = true);
        }),
      },
    });
    const actor = createActor(machine, { input: { name: 'A' } });
    actor.start();
    actor.send({ type: 'entry.start' });
    expect(samplers).toHaveLength(0); // starting: no process to sample yet
    vi.setSystemTime(new Date('2026-01-02T03:04:05Z'));
    fake.last().sendBack({ type: 'worker.ready', pid: 42 });
    expect(samplers).toEqual([{ input: { pid: 42, startedAt: Date.parse('2026-01-02T03:04:05Z') }, stopped: false, sendBack: expect.any(Function) }]);
    const sample = {
      info: { age: 2, cpu: 37.5, create_time: 1, ctime: '0:00.75', mem: 0.2, mem_info1: '51M', mem_info2: '1.2G', started: 1, pid: 42 },
      rss: 51 << 20,
      cpuSeconds: 0.75,
    };
    samplers[0]!.sendBack({ type: 'worker.sampled', sample });
    expect(actor.getSnapshot().context.sample).toEqual(sample);
    actor.send({ type: 'entry.stop' });
    expect(samplers[0]!.stopped).toBe(true); // draining: no longer running
    fake.last().sendBack({ type: 'worker.exited', code: 0, signal: null });
    expect(actor.getSnapshot().context.sample).toBeNull();
  });

  describe('within an actor system', () => {
    /** A system with a recording `rules` actor and one entry `entry:A`, its dispatch on a fake store. */
    function startSystem() {
      const fake = fakeWorkers();
      const { store, provide } = fakeStore();
      const toRules: AnyEventObject[] = [];
      const recordingRules = fromCallback<AnyEventObject>(({ receive }) => {
        receive((event) => toRules.push(event));
      });
      const parent = setup({
        actors: {
          rules: recordingRules,
          entry: provide(fake.logic),
        },
      }).createMachine({
        entry: [
          spawnChild('rules', { id: 'rules', systemId: 'rules' }),
          spawnChild('entry', { id: 'entry:A', systemId: 'entry:A', input: { name: 'A' } }),
        ],
      });
      const root = createActor(parent).start();
      const entry = root.system.get('entry:A')!;
      return { root, entry, toRules, store, ...fake };
    }

    it("forwards each message's reports to the rules actor as one batch", () => {
      const { entry, toRules, last } = startSystem();
      entry.send({ type: 'entry.start' });
      const changed: WorkerReport = { type: 'file.changed', entry: 'A', path: 'a.txt', stat: { size: 1, mtime: 2, ino: '3' } };
      const chunk: WorkerReport = { type: 'scan.chunk', entry: 'A', files: [{ path: 'b.txt', size: 1, mtime: 2, ino: '4' }] };

      // Reports while starting are the rescan: they go to the rules actor too.
      last().sendBack({ type: 'worker.reports', reports: [chunk, changed] });
      expect(toRules).toEqual([{ type: 'reports.batch', entry: 'A', reports: [chunk, changed] }]);

      last().sendBack({ type: 'worker.ready', pid: 9 });
      const failed: WorkerReport = { type: 'job.finished', entry: 'A', jobId: 7, outcome: { ok: false, reason: 'error', message: 'boom' } };
      last().sendBack({ type: 'worker.reports', reports: [failed, changed] });
      expect(toRules).toEqual([
        { type: 'reports.batch', entry: 'A', reports: [chunk, changed] },
        { type: 'entry.ready', entry: 'A' },
        { type: 'reports.batch', entry: 'A', reports: [failed, changed] },
      ]);
    });

    it('announces to the rules actor that it is ready', () => {
      const { entry, toRules, last } = startSystem();
      entry.send({ type: 'entry.start' });
      expect(toRules).toEqual([]);
      last().sendBack({ type: 'worker.ready', pid: 9 });
      expect(toRules).toEqual([{ type: 'entry.ready', entry: 'A' }]);
    });

    it('draining records the last reports (a scan begun is left to the next start), then stops and puts back the rest', async () => {
      const { entry, toRules, store, last } = startSystem();
      for (let id = 1; id <= 3; id++) store.remove(id);
      entry.send({ type: 'entry.start' });
      last().sendBack({ type: 'worker.ready', pid: 9 });
      await settle();
      expect(sentJobs(last())).toEqual([[1, 2, 3]]);
      toRules.length = 0;

      entry.send({ type: 'entry.stop' });
      expect(entry.getSnapshot().value).toEqual({ active: 'draining' });
      expect(last().received.at(-1)).toEqual({ type: 'worker.stop' });
      // On its way out the worker finished job 1, abandoned 2 and 3, and had begun a rescan.
      const changed: WorkerReport = { type: 'file.changed', entry: 'A', path: 'late.txt', stat: { size: 1, mtime: 2, ino: '5' } };
      const chunk: WorkerReport = { type: 'scan.chunk', entry: 'A', files: [] };
      last().sendBack({ type: 'worker.reports', reports: [...finished(1), chunk, changed] });
      expect(toRules).toEqual([{ type: 'reports.batch', entry: 'A', reports: [...finished(1), changed] }]);
      expect(entry.getSnapshot().context.jobsInFlight).toBe(2);
      // Jobs made available meanwhile wait for the next start.
      entry.send({ type: 'jobs.available' });
      await settle();
      expect(store.takes).toHaveLength(1);

      last().sendBack({ type: 'worker.exited', code: 0, signal: null });
      expect(entry.getSnapshot().value).toBe('stopped');
      expect(store.requeued).toEqual([[2, 3]]);
    });

    it('a batch flows worker → entry → rules → jobs.queued → jobs.available to the entries named, in the real daemon machine', async () => {
      const fake = fakeWorkers();
      const { store, provide } = fakeStore();
      const batches: unknown[] = [];
      const machine = daemonMachine.provide({
        actors: {
          entry: provide(fake.logic),
          rules: rulesMachine.provide({
            actions: {
              recordReports: ({ event, self }) => {
                batches.push(event);
                // As src does: the catalogue says B has work.
                self.send({ type: 'jobs.queued', entries: ['B'] });
              },
            },
          }),
        },
      });
      const root = createActor(machine, {
        input: { entries: ['A', 'B', 'C'], rules: { entries: ['A', 'B', 'C'], staged: [], active: [] } },
      }).start();
      const a = root.system.get('entry:A')!;
      const b = root.system.get('entry:B')!;
      const c = root.system.get('entry:C')!;
      const workers: Record<string, FakeWorker> = {};
      for (const [name, actor] of [['A', a], ['B', b], ['C', c]] as const) {
        actor.send({ type: 'entry.start' });
        workers[name] = fake.last();
        workers[name].sendBack({ type: 'worker.ready', pid: name.charCodeAt(0) });
      }
      await settle();
      for (const actor of [a, b, c]) expect(actor.getSnapshot().value).toEqual({ active: { running: 'waiting' } });
      store.takes.length = 0;

      const reports: WorkerReport[] = [
        { type: 'file.deleted', entry: 'A', path: 'gone.txt' },
        { type: 'file.changed', entry: 'A', path: 'new.txt', stat: { size: 1, mtime: 1, ino: '1' } },
        { type: 'file.moved', entry: 'A', from: 'x.txt', path: 'y.txt', stat: { size: 1, mtime: 1, ino: '2' } },
      ];
      workers.A!.sendBack({ type: 'worker.reports', reports });
      // One event for the three reports.
      expect(batches).toEqual([{ type: 'reports.batch', entry: 'A', reports }]);
      await settle();
      // B was told, and asked the store for jobs; A and C were not.
      expect(store.takes.map((t) => t.name)).toEqual(['B']);
      root.stop();
    });
  });

  describe('every state has a description', () => {
    const machines = { entry: entryMachine, rules: rulesMachine, daemon: daemonMachine };
    for (const [name, machine] of Object.entries(machines)) {
      it(`in the ${name} machine`, () => {
        const states = allStates(machine.root);
        expect(states.length).toBeGreaterThan(1);
        const missing = states.filter((s) => !s.description?.trim()).map((s) => s.id);
        expect(missing).toEqual([]);
      });
    }

    it('the walk sees nested states', () => {
      const ids = allStates(entryMachine.root).map((s) => s.id);
      expect(ids).toEqual(
        expect.arrayContaining([
          'entry',
          'entry.stopped',
          'entry.active',
          'entry.active.starting',
          'entry.active.running',
          'entry.active.running.dispatching',
          'entry.active.running.waiting',
          'entry.active.running.backingOff',
          'entry.active.draining',
          'entry.restarting',
        ]),
      );
    });
  });
});

