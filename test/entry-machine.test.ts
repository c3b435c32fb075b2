import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromCallback, setup, spawnChild, type AnyEventObject } from 'xstate';
import { entryMachine, type EntryEvent, type EntryInput, type SamplerInput } from '../machines/entry.js';
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

const BACKOFF_PER_FAILURE = 1000;
const STABLE_AFTER = 10_000;

function startEntry() {
  const fake = fakeWorkers();
  const machine = entryMachine.provide({
    actors: { worker: fake.logic, sampler: noSampler },
    delays: {
      backoff: ({ context }) => BACKOFF_PER_FAILURE * context.failures,
      stableAfter: STABLE_AFTER,
    },
  });
  const actor = createActor(machine, { input: { name: 'A' } });
  actor.start();
  return { actor, ...fake };
}

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
      restoresAsked: 0,
      restored: [],
      ignore: null,
    });
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
    expect(snapshot.value).toEqual({ active: 'running' });
    expect(snapshot.context.pid).toBe(4242);
    expect(snapshot.context.startedAt).toBe(Date.parse('2026-01-02T03:04:05Z'));
  });

  it('stops the worker on entry.stop', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 10 });

    actor.send({ type: 'entry.stop' });
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('stopped');
    expect(last().stopped).toBe(true);
    expect(snapshot.context.pid).toBeNull();
    expect(snapshot.context.startedAt).toBeNull();
    expect(workers).toHaveLength(1);
  });

  it('stops a worker that is still starting on entry.stop', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start' });
    actor.send({ type: 'entry.stop' });
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

  it('gives the worker force only for a forced start, and forgets it once the worker is ready', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'entry.start', force: true });
    expect(last().input).toEqual({ name: 'A', force: true });
    last().sendBack({ type: 'worker.ready', pid: 42 });
    expect(actor.getSnapshot().context.force).toBe(false);
    actor.send({ type: 'entry.restart' });
    expect(last().input).toEqual({ name: 'A', force: false });
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

  it('re-enters active on entry.restart: the worker is stopped and started again', () => {
    const { actor, workers, last } = startEntry();
    actor.send({ type: 'entry.start' });
    last().sendBack({ type: 'worker.ready', pid: 10 });
    expect(actor.getSnapshot().value).toEqual({ active: 'running' });

    actor.send({ type: 'entry.restart' });
    expect(actor.getSnapshot().value).toEqual({ active: 'starting' });
    expect(workers).toHaveLength(2);
    expect(workers[0]!.stopped).toBe(true);
    expect(workers[1]!.stopped).toBe(false);

    workers[1]!.sendBack({ type: 'worker.ready', pid: 11 });
    expect(actor.getSnapshot().value).toEqual({ active: 'running' });
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
    expect(actor.getSnapshot().value).toEqual({ active: 'running' });
    expect(actor.getSnapshot().context.failures).toBe(1);

    vi.advanceTimersByTime(STABLE_AFTER - 1);
    expect(actor.getSnapshot().context.failures).toBe(1);
    vi.advanceTimersByTime(1);
    expect(actor.getSnapshot().value).toEqual({ active: 'running' });
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

  it('forwards jobs.available to the worker only while running', () => {
    const { actor, last } = startEntry();
    actor.send({ type: 'jobs.available' }); // stopped: nowhere to go, ignored
    actor.send({ type: 'entry.start' });
    actor.send({ type: 'jobs.available' }); // starting: the worker takes jobs once ready
    expect(last().received).toEqual([]);

    last().sendBack({ type: 'worker.ready', pid: 1 });
    actor.send({ type: 'jobs.available' });
    expect(last().received).toEqual([{ type: 'jobs.available' }]);
  });

  it('numbers restores and forwards them to the worker only while running; keeps their results and the ignore patterns', () => {
    const { actor, last } = startEntry();
    const restore = { type: 'entry.restore', key: 'a.txt/20261129-083001-123.deleted' } as const;
    expect(actor.getSnapshot().can(restore)).toBe(false);
    actor.send({ type: 'entry.start' });
    expect(actor.getSnapshot().can(restore)).toBe(false);
    last().sendBack({ type: 'worker.ignore', patterns: ['*.log'] });
    last().sendBack({ type: 'worker.ready', pid: 1 });
    expect(actor.getSnapshot().can(restore)).toBe(true);
    actor.send(restore);
    actor.send(restore);
    expect(last().received).toEqual([
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
    expect(samplers[0]!.stopped).toBe(true);
    expect(actor.getSnapshot().context.sample).toBeNull();
  });

  describe('within an actor system', () => {
    /** A system with a recording `rules` actor and one entry `entry:A`. */
    function startSystem() {
      const fake = fakeWorkers();
      const toRules: AnyEventObject[] = [];
      const recordingRules = fromCallback<AnyEventObject>(({ receive }) => {
        receive((event) => toRules.push(event));
      });
      const parent = setup({
        actors: {
          rules: recordingRules,
          entry: entryMachine.provide({ actors: { worker: fake.logic, sampler: noSampler } }),
        },
      }).createMachine({
        entry: [
          spawnChild('rules', { id: 'rules', systemId: 'rules' }),
          spawnChild('entry', { id: 'entry:A', systemId: 'entry:A', input: { name: 'A' } }),
        ],
      });
      const root = createActor(parent).start();
      const entry = root.system.get('entry:A')!;
      return { root, entry, toRules, ...fake };
    }

    it('forwards worker reports to the rules actor', () => {
      const { entry, toRules, last } = startSystem();
      entry.send({ type: 'entry.start' });
      const report: WorkerReport = { type: 'file.changed', entry: 'A', path: 'a.txt', stat: { size: 1, mtime: 2, ino: '3' } };

      // Reports while starting are the rescan: they go to the rules actor too.
      last().sendBack({ type: 'worker.report', report });
      expect(toRules).toEqual([report]);

      last().sendBack({ type: 'worker.ready', pid: 9 });
      const finished: WorkerReport = {
        type: 'job.finished',
        entry: 'A',
        jobId: 7,
        outcome: { ok: false, reason: 'error', message: 'boom' },
      };
      last().sendBack({ type: 'worker.report', report: finished });
      expect(toRules).toEqual([report, { type: 'entry.ready', entry: 'A' }, finished]);
    });

    it('announces to the rules actor that it is ready', () => {
      const { entry, toRules, last } = startSystem();
      entry.send({ type: 'entry.start' });
      expect(toRules).toEqual([]);
      last().sendBack({ type: 'worker.ready', pid: 9 });
      expect(toRules).toEqual([{ type: 'entry.ready', entry: 'A' }]);
    });

    it('runs in the real daemon machine: reports reach the rules actor, jobs reach the worker', () => {
      const fake = fakeWorkers();
      const recordReport = vi.fn();
      const machine = daemonMachine.provide({
        actors: {
          entry: entryMachine.provide({ actors: { worker: fake.logic, sampler: noSampler } }),
          rules: rulesMachine.provide({
            actions: {
              recordReport: ({ event, self }) => {
                recordReport(event);
                // As src does: the catalogue says B has work.
                self.send({ type: 'jobs.queued', entries: ['B'] });
              },
            },
          }),
        },
      });
      const root = createActor(machine, {
        input: { entries: ['A', 'B'], rules: { entries: ['A', 'B'], staged: [], active: [] } },
      }).start();
      const a = root.system.get('entry:A')!;
      const b = root.system.get('entry:B')!;
      a.send({ type: 'entry.start' });
      const workerA = fake.last();
      workerA.sendBack({ type: 'worker.ready', pid: 1 });
      b.send({ type: 'entry.start' });
      const workerB = fake.last();
      workerB.sendBack({ type: 'worker.ready', pid: 2 });
      expect(a.getSnapshot().value).toEqual({ active: 'running' });
      expect(b.getSnapshot().value).toEqual({ active: 'running' });
      workerA.received.length = 0;
      workerB.received.length = 0;

      const report: WorkerReport = { type: 'file.deleted', entry: 'A', path: 'gone.txt' };
      workerA.sendBack({ type: 'worker.report', report });
      expect(recordReport.mock.calls).toEqual([[report]]);
      expect(workerB.received).toEqual([{ type: 'jobs.available' }]);
      expect(workerA.received).toEqual([]);
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
        expect.arrayContaining(['entry', 'entry.stopped', 'entry.active', 'entry.active.starting', 'entry.active.running', 'entry.restarting']),
      );
    });
  });
});

