import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromCallback, fromPromise, waitFor, type Actor } from 'xstate';
import { rulesMachine, type Rule, type RulesChange, type RulesEvent, type RulesInput } from '../machines/rules.js';
import { entryMachine, type EntryEvent, type EntryInput, type TakeJobsInput, type TakenJobs } from '../machines/entry.js';
import { daemonMachine } from '../machines/daemon.js';
import type { WorkerReport } from '../machines/reports.js';
import { recordReports } from '../src/rules-actor.js';
import { MassDeletionRefused, ScanStale } from '../src/sync/engine.js';

const EVERYTHING_TO_A: Rule[] = [{ match: { path: '/' }, sync: ['A'] }];
const PDFS_TO_B: Rule[] = [
  { match: { path: '/' }, sync: ['A'] },
  { match: { path: '/backedup/', mime: ['application/pdf'] }, sync: ['B'] },
];

/** Lets the promise actors settle: a few turns of the microtask queue. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** A promise the test settles by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Fakes of what src gives the rules machine: they record their calls. */
function fakes() {
  const recordReports = vi.fn<(event: RulesEvent) => void>();
  const persistStaged = vi.fn<(event: RulesEvent) => void>();
  const applyCalls: { rules: Rule[]; settle: ReturnType<typeof deferred<string[]>> }[] = [];
  const applyRules = fromPromise<string[], { rules: Rule[] }>(({ input }) => {
    const settle = deferred<string[]>();
    applyCalls.push({ rules: input.rules, settle });
    return settle.promise;
  });
  const machine = rulesMachine.provide({
    actions: {
      recordReports: ({ event }) => recordReports(event),
      persistStaged: ({ event }) => persistStaged(event),
    },
    actors: { applyRules },
  });
  return { recordReports, persistStaged, applyCalls, machine };
}

const actors: Actor<any>[] = [];
function start<T extends Actor<any>>(actor: T): T {
  actors.push(actor);
  return actor.start();
}

afterEach(() => {
  for (const actor of actors.splice(0)) actor.stop();
});

function startRules(input: Partial<RulesInput> = {}) {
  const f = fakes();
  const actor = start(
    createActor(f.machine, { input: { entries: ['A', 'B'], staged: EVERYTHING_TO_A, active: EVERYTHING_TO_A, ...input } }),
  );
  return { actor, ...f };
}

describe('rules machine', () => {
  it('starts ready with the given rules', () => {
    const { actor } = startRules({ staged: PDFS_TO_B });
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('ready');
    expect(snapshot.context).toEqual({
      entries: ['A', 'B'],
      staged: PDFS_TO_B,
      active: EVERYTHING_TO_A,
      lastError: null,
      previewsAsked: 0,
      preview: null,
    });
  });

  it('computes a preview of the staged rules on rules.preview, numbered, in any state', async () => {
    const calls: { id: number; rules: Rule[] }[] = [];
    const machine = fakes().machine.provide({
      actors: {
        previewRules: fromPromise<{ id: number; rules: Rule[]; changes: RulesChange[] }, { id: number; rules: Rule[] }>(async ({ input }) => {
          calls.push(input);
          return { ...input, changes: [{ fid: 'f', filename: 'backedup/a.pdf', gain: ['B'], lose: [] }] };
        }),
      },
    });
    const actor = start(createActor(machine, { input: { entries: ['A', 'B'], staged: PDFS_TO_B, active: EVERYTHING_TO_A } }));
    actor.send({ type: 'rules.preview' });
    expect(actor.getSnapshot().context.previewsAsked).toBe(1);
    const done = await waitFor(actor, (s) => s.context.preview !== null, { timeout: 1000 });
    expect(calls).toEqual([{ id: 1, rules: PDFS_TO_B }]);
    expect(done.context.preview).toEqual({
      id: 1,
      rules: PDFS_TO_B,
      changes: [{ fid: 'f', filename: 'backedup/a.pdf', gain: ['B'], lose: [] }],
    });
    expect(done.value).toBe('ready');
  });

  it('stages rules: context.staged changes and they are persisted; the active rules stay', () => {
    const { actor, persistStaged, applyCalls } = startRules();
    actor.send({ type: 'rules.stage', rules: PDFS_TO_B });

    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('ready');
    expect(snapshot.context.staged).toEqual(PDFS_TO_B);
    expect(snapshot.context.active).toEqual(EVERYTHING_TO_A);
    expect(persistStaged).toHaveBeenCalledTimes(1);
    expect(persistStaged).toHaveBeenCalledWith({ type: 'rules.stage', rules: PDFS_TO_B });
    expect(applyCalls).toHaveLength(0);
  });

  it('reloads staged rules that differ from the active ones', async () => {
    const { actor, applyCalls } = startRules();
    actor.send({ type: 'rules.stage', rules: PDFS_TO_B });
    actor.send({ type: 'rules.reload' });

    expect(actor.getSnapshot().value).toBe('reloading');
    expect(applyCalls).toHaveLength(1);
    expect(applyCalls[0]!.rules).toEqual(PDFS_TO_B);
    // Still the old rules until they are applied.
    expect(actor.getSnapshot().context.active).toEqual(EVERYTHING_TO_A);

    applyCalls[0]!.settle.resolve([]);
    const snapshot = await waitFor(actor, (s) => s.matches('ready'), { timeout: 5000 });
    expect(snapshot.context.active).toEqual(PDFS_TO_B);
    expect(snapshot.context.staged).toEqual(PDFS_TO_B);
    expect(snapshot.context.lastError).toBeNull();
  });

  it('does nothing on a reload when the staged rules are the active ones', () => {
    const { actor, applyCalls } = startRules();
    // Accepted (the API answers 200, not 409), though there is nothing to apply.
    expect(actor.getSnapshot().can({ type: 'rules.reload' })).toBe(true);
    actor.send({ type: 'rules.reload' });
    expect(actor.getSnapshot().value).toBe('ready');
    expect(applyCalls).toHaveLength(0);
    expect(Object.keys(actor.getSnapshot().children)).toEqual([]);

    // Staging the same rules again changes nothing either.
    actor.send({ type: 'rules.stage', rules: structuredClone(EVERYTHING_TO_A) });
    actor.send({ type: 'rules.reload' });
    expect(actor.getSnapshot().value).toBe('ready');
    expect(applyCalls).toHaveLength(0);
  });

  it('goes back to ready with the error when applying fails, keeping the active rules', async () => {
    const { actor, applyCalls } = startRules();
    actor.send({ type: 'rules.stage', rules: PDFS_TO_B });
    actor.send({ type: 'rules.reload' });
    applyCalls[0]!.settle.reject(new Error('setup file is read-only'));

    let snapshot = await waitFor(actor, (s) => s.matches('ready'), { timeout: 5000 });
    expect(snapshot.context.lastError).toBe('setup file is read-only');
    expect(snapshot.context.active).toEqual(EVERYTHING_TO_A);
    expect(snapshot.context.staged).toEqual(PDFS_TO_B);

    // A later reload that works clears the error.
    actor.send({ type: 'rules.reload' });
    expect(actor.getSnapshot().value).toBe('reloading');
    applyCalls[1]!.settle.resolve([]);
    snapshot = await waitFor(actor, (s) => s.matches('ready') && s.context.lastError === null, { timeout: 5000 });
    expect(snapshot.context.active).toEqual(PDFS_TO_B);
  });

  it('takes no rules.stage nor rules.reload while reloading', async () => {
    const { actor, applyCalls, persistStaged } = startRules();
    actor.send({ type: 'rules.stage', rules: PDFS_TO_B });
    actor.send({ type: 'rules.reload' });
    persistStaged.mockClear();

    const snapshot = actor.getSnapshot();
    expect(snapshot.can({ type: 'rules.stage', rules: [] })).toBe(false);
    expect(snapshot.can({ type: 'rules.reload' })).toBe(false);
    actor.send({ type: 'rules.stage', rules: [] });
    actor.send({ type: 'rules.reload' });
    expect(actor.getSnapshot().context.staged).toEqual(PDFS_TO_B);
    expect(persistStaged).not.toHaveBeenCalled();
    expect(applyCalls).toHaveLength(1);

    applyCalls[0]!.settle.resolve([]);
    const ready = await waitFor(actor, (s) => s.matches('ready'), { timeout: 5000 });
    expect(ready.can({ type: 'rules.stage', rules: [] })).toBe(true);
    expect(ready.can({ type: 'rules.reload' })).toBe(true);
  });

  it("records every batch of an entry's reports, in any state", () => {
    const { actor, recordReports, applyCalls } = startRules();
    const stat = { size: 3, mtime: 1000, ino: '12' };
    const reports: WorkerReport[] = [
      { type: 'file.changed', entry: 'A', path: 'a.txt', stat },
      { type: 'file.deleted', entry: 'A', path: 'a.txt' },
      { type: 'file.moved', entry: 'B', from: 'a.txt', path: 'b.txt', stat },
      { type: 'scan.chunk', entry: 'B', files: [{ path: 'a.txt', ...stat }] },
      { type: 'entry.scanned', entry: 'B', files: [{ path: 'b.txt', ...stat }] },
      { type: 'job.finished', entry: 'A', jobId: 4, outcome: { ok: true, stat } },
    ];
    const batch = { type: 'reports.batch', entry: 'A', reports } as const;
    actor.send(batch);
    expect(recordReports.mock.calls.map(([e]) => e)).toEqual([batch]);

    // While reloading too: changes keep coming.
    actor.send({ type: 'rules.stage', rules: PDFS_TO_B });
    actor.send({ type: 'rules.reload' });
    expect(actor.getSnapshot().value).toBe('reloading');
    actor.send(batch);
    expect(recordReports).toHaveBeenCalledTimes(2);
    expect(applyCalls).toHaveLength(1);
  });

  it('records nothing for events that are not reports', () => {
    const { actor, recordReports } = startRules();
    actor.send({ type: 'rules.stage', rules: PDFS_TO_B });
    actor.send({ type: 'entry.ready', entry: 'A' });
    actor.send({ type: 'jobs.queued', entries: ['A'] });
    expect(recordReports).not.toHaveBeenCalled();
  });

  describe('in the daemon', () => {
    /**
     * The real daemon machine with fake workers, the fake rules actions, and entries A, B, C.
     * An entry told `jobs.available` asks its store for jobs: `received` lists those asks.
     */
    function startDaemon(options: { rules?: typeof rulesMachine } = {}) {
      const f = fakes();
      const workers = new Map<string, { sendBack: (e: EntryEvent) => void }>();
      const asks = new Map<string, number>();
      const worker = fromCallback<EntryEvent, EntryInput>(({ input, sendBack }) => {
        workers.set(input.name, { sendBack });
      });
      const takeJobs = fromPromise<TakenJobs, TakeJobsInput>(async ({ input }) => {
        asks.set(input.name, (asks.get(input.name) ?? 0) + 1);
        return { refusal: null, jobs: [], nextDue: null };
      });
      const machine = daemonMachine.provide({
        actors: {
          rules: options.rules ?? f.machine,
          entry: entryMachine.provide({ actors: { worker, sampler: fromCallback(() => () => {}), takeJobs } }),
        },
      });
      const root = start(
        createActor(machine, {
          input: {
            entries: ['A', 'B', 'C'],
            rules: { entries: ['A', 'B', 'C'], staged: EVERYTHING_TO_A, active: EVERYTHING_TO_A },
          },
        }),
      );
      const rules = root.system.get('rules')!;
      const entry = (name: string) => root.system.get(`entry:${name}`)!;
      /** Starts the entry and makes its worker ready; its first dispatch is done once it resolves. */
      const run = async (name: string) => {
        entry(name).send({ type: 'entry.start' });
        workers.get(name)!.sendBack({ type: 'worker.ready', pid: name.charCodeAt(0) });
        expect(entry(name).getSnapshot().matches({ active: 'running' })).toBe(true);
        await settle();
      };
      /** What the entry was told since the last `forget`: one `jobs.available` for each ask of its store. */
      const received = (name: string) => Array.from({ length: asks.get(name) ?? 0 }, () => ({ type: 'jobs.available' }));
      const forget = async () => {
        await settle();
        asks.clear();
      };
      return { root, rules, entry, run, received, forget, ...f };
    }

    it('spawns the rules actor and one actor per entry under their system ids', () => {
      const { root, rules, entry } = startDaemon();
      expect(rules.getSnapshot().value).toBe('ready');
      for (const name of ['A', 'B', 'C']) {
        expect(entry(name).getSnapshot().value).toBe('stopped');
        expect(entry(name).getSnapshot().context.name).toBe(name);
      }
      expect(root.system.get('entry:D')).toBeUndefined();
    });

    it('sends jobs.available to the entries named by jobs.queued', async () => {
      const { rules, run, received, forget } = startDaemon();
      await run('A');
      await run('B');
      await run('C');
      await forget();

      rules.send({ type: 'jobs.queued', entries: ['B', 'C'] });
      expect(received('A')).toEqual([]);
      expect(received('B')).toEqual([{ type: 'jobs.available' }]);
      expect(received('C')).toEqual([{ type: 'jobs.available' }]);
    });

    it('ignores unknown entries and stopped ones in jobs.queued', async () => {
      const { rules, entry, run, received, forget } = startDaemon();
      await run('A');
      await forget();
      rules.send({ type: 'jobs.queued', entries: ['Z', 'B', 'A'] });
      expect(received('A')).toEqual([{ type: 'jobs.available' }]);
      expect(received('B')).toEqual([]); // never started: no worker
      expect(entry('B').getSnapshot().value).toBe('stopped');
      expect(rules.getSnapshot().status).toBe('active');
    });

    it('announces jobs when recordReports queues some', async () => {
      const { rules, run, received, forget, recordReports } = startDaemon();
      // As src does: the batch gives B work.
      recordReports.mockImplementation((event) => {
        if (event.type === 'reports.batch') rules.send({ type: 'jobs.queued', entries: ['B'] });
      });
      await run('A');
      await run('B');
      await forget();
      rules.send({ type: 'reports.batch', entry: 'A', reports: [{ type: 'file.changed', entry: 'A', path: 'a.txt', stat: { size: 1, mtime: 1, ino: null } }] });
      expect(received('B')).toEqual([{ type: 'jobs.available' }]);
      expect(received('A')).toEqual([]);
    });

    it('announces the entries applyRules names once the reload is done', async () => {
      const { rules, run, received, forget, applyCalls } = startDaemon();
      await run('A');
      await run('B');
      await run('C');
      await forget();

      rules.send({ type: 'rules.stage', rules: PDFS_TO_B });
      rules.send({ type: 'rules.reload' });
      expect(received('B')).toEqual([]);
      applyCalls[0]!.settle.resolve(['B']);
      await waitFor(rules, (s) => s.matches('ready'), { timeout: 5000 });
      expect(received('A')).toEqual([]);
      expect(received('B')).toEqual([{ type: 'jobs.available' }]);
      expect(received('C')).toEqual([]);
    });

    it('announces to every running entry when one becomes ready', async () => {
      const { rules, entry, run, received, forget } = startDaemon();
      await run('A');
      await run('B');
      await forget();

      // C's worker becomes ready: through its entry actor, the rules actor hears entry.ready.
      await run('C');
      await settle();
      expect(received('A')).toEqual([{ type: 'jobs.available' }]);
      expect(received('B')).toEqual([{ type: 'jobs.available' }]);
      // C dispatches as it becomes ready, and once more for the announcement that came meanwhile.
      expect(received('C')).toHaveLength(2);

      // Sent by hand, it reaches every entry as well; one that is stopping gives its worker no more.
      entry('B').send({ type: 'entry.stop' });
      await forget();
      rules.send({ type: 'entry.ready', entry: 'A' });
      expect(received('A')).toEqual([{ type: 'jobs.available' }]);
      expect(received('B')).toEqual([]);
      expect(received('C')).toEqual([{ type: 'jobs.available' }]);
    });

    describe("with src's recordReports over a fake engine", () => {
      const finishedJob: WorkerReport = { type: 'job.finished', entry: 'A', jobId: 7, outcome: { ok: true, stat: { size: 1, mtime: 1, ino: '1' } } };
      const changed: WorkerReport = { type: 'file.changed', entry: 'A', path: 'a.txt', stat: { size: 1, mtime: 1, ino: '2' } };

      function withEngine(handleBatch: () => { touched: string[]; refused: MassDeletionRefused | null; stale: ScanStale | null }) {
        const requeued: number[][] = [];
        const grouped: number[] = [];
        const log = { error: vi.fn(), warn: vi.fn(), info: vi.fn() };
        const engine = {
          handleBatch: vi.fn(handleBatch),
          requeue: (ids: Iterable<number>) => void requeued.push([...ids]),
          diff: () => [],
          applyRules: () => [],
        };
        const store = {
          grouped: <T,>(fn: () => T): T => {
            grouped.push(1);
            return fn();
          },
          putRules: () => {},
        };
        const rules = rulesMachine.provide({ actions: { recordReports: recordReports({ engine, store, log }) } });
        return { d: startDaemon({ rules }), engine, requeued, grouped, log };
      }

      it('records the batch in one grouped transaction and announces the entries it queued jobs for, and the one whose jobs finished', async () => {
        const { d, engine, grouped } = withEngine(() => ({ touched: ['B'], refused: null, stale: null }));
        await d.run('A');
        await d.run('B');
        await d.run('C');
        await d.forget();
        d.rules.send({ type: 'reports.batch', entry: 'A', reports: [finishedJob, changed] });
        expect(engine.handleBatch.mock.calls).toEqual([[[finishedJob, changed]]]);
        expect(grouped).toEqual([1]);
        expect(d.received('A')).toEqual([{ type: 'jobs.available' }]);
        expect(d.received('B')).toEqual([{ type: 'jobs.available' }]);
        expect(d.received('C')).toEqual([]);
        // A batch without finished jobs tells only the entries the engine names.
        await d.forget();
        d.rules.send({ type: 'reports.batch', entry: 'A', reports: [changed] });
        expect(d.received('A')).toEqual([]);
        expect(d.received('B')).toEqual([{ type: 'jobs.available' }]);
      });

      it('stops the entry whose scan would delete most of its files, with the reason; the rest of the batch counts', async () => {
        const refusal = new MassDeletionRefused('A', 30, 40);
        const { d, log } = withEngine(() => ({ touched: ['B'], refused: refusal, stale: null }));
        await d.run('A');
        await d.run('B');
        await d.forget();
        d.rules.send({ type: 'reports.batch', entry: 'A', reports: [{ type: 'entry.scanned', entry: 'A', files: [] }] });
        expect(d.entry('A').getSnapshot().value).toBe('stopped');
        expect(d.entry('A').getSnapshot().context.lastError).toBe(refusal.message);
        expect(d.entry('B').getSnapshot().matches({ active: 'running' })).toBe(true);
        expect(d.received('B')).toEqual([{ type: 'jobs.available' }]);
        expect(log.warn).toHaveBeenCalledTimes(1);
      });

      it('starts again the entry whose scan left out folders the store changed meanwhile (its worker is asked to stop, then forked again)', async () => {
        const stale = new ScanStale('A', 2);
        const { d, log } = withEngine(() => ({ touched: [], refused: null, stale }));
        await d.run('A');
        await d.run('B');
        d.rules.send({ type: 'reports.batch', entry: 'A', reports: [{ type: 'entry.scanned', entry: 'A', files: [] }] });
        expect(d.entry('A').getSnapshot().matches({ active: 'draining' })).toBe(true);
        expect(d.entry('A').getSnapshot().context.restart).not.toBeNull();
        expect(d.entry('B').getSnapshot().matches({ active: 'running' })).toBe(true);
        expect(log.warn).toHaveBeenCalledWith({ entry: 'A', folders: 2 }, stale.message);
      });

      it('pauses every entry with the reason when the store is full, and requeues the finished jobs of the batch', async () => {
        vi.useFakeTimers();
        try {
          // What better-sqlite3 throws: an SqliteError with its code.
          const full = Object.assign(new Error('database or disk is full'), { name: 'SqliteError', code: 'SQLITE_FULL' });
          const { d, requeued, log } = withEngine(() => {
            throw full;
          });
          await d.run('A');
          await d.run('B');
          d.rules.send({ type: 'reports.batch', entry: 'A', reports: [finishedJob, changed] });
          for (const name of ['A', 'B']) {
            const snapshot = d.entry(name).getSnapshot();
            expect(snapshot.value).toBe('restarting');
            expect(snapshot.context.lastError).toBe("the store's disk is full: database or disk is full");
          }
          // Never started: it stays stopped.
          expect(d.entry('C').getSnapshot().value).toBe('stopped');
          // Nothing of the batch was recorded: its finished job goes back to the queue.
          expect(requeued).toEqual([[7]]);
          expect(log.error).toHaveBeenCalledTimes(1);
          // The rules actor carries on: the failure is an event, not a crash.
          expect(d.rules.getSnapshot().status).toBe('active');
          expect(d.root.getSnapshot().context.restarts).toBe(0);
          // Each entry starts again after its back-off (and rescans).
          await vi.advanceTimersByTimeAsync(1000);
          for (const name of ['A', 'B']) expect(d.entry(name).getSnapshot().value).toEqual({ active: 'starting' });
        } finally {
          vi.useRealTimers();
        }
      });

      it('lets an error that is not the store fail the rules actor (the daemon starts it again), its finished jobs requeued', async () => {
        const { d, requeued } = withEngine(() => {
          throw new TypeError('a bug');
        });
        await d.run('A');
        await d.forget();
        d.rules.send({ type: 'reports.batch', entry: 'A', reports: [finishedJob] });
        expect(requeued).toEqual([[7]]);
        expect(d.root.getSnapshot().context.restarts).toBe(1);
        expect(d.root.system.get('rules')!.getSnapshot().status).toBe('active');
        expect(d.entry('A').getSnapshot().matches({ active: 'running' })).toBe(true);
        // What the failed actor would have announced is lost: every entry looks for work.
        expect(d.received('A')).toHaveLength(1);
      });
    });
  });
});
