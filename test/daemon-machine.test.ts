import { describe, expect, it, vi } from 'vitest';
import { createActor, fromCallback } from 'xstate';
import { daemonMachine } from '../machines/daemon.js';
import { entryMachine, type EntryEvent, type EntryInput } from '../machines/entry.js';
import { rulesMachine, type Rule, type RulesEvent } from '../machines/rules.js';
import type { WorkerReport } from '../machines/reports.js';

/** The daemon machine supervises its children: one that fails is reported and started again. */

interface Worker {
  input: EntryInput;
  stopped: boolean;
  sendBack(event: EntryEvent): void;
}

const RULES: Rule[] = [{ match: { path: '/' }, sync: ['A', 'B'] }];
const STAGED: Rule[] = [{ match: { path: '/docs/' }, sync: ['B'] }];

function startDaemon(options: { failRules?: (event: WorkerReport) => boolean; failReady?: (name: string) => boolean } = {}) {
  const workers: Worker[] = [];
  const recorded: WorkerReport[] = [];
  const reported: { actor: string; error: unknown }[] = [];
  const machine = daemonMachine.provide({
    actions: { reportActorError: (_, params) => void reported.push(params) },
    actors: {
      entry: entryMachine.provide({
        actors: {
          worker: fromCallback<EntryEvent, EntryInput>(({ input, sendBack }) => {
            const w: Worker = { input, stopped: false, sendBack };
            workers.push(w);
            return () => void (w.stopped = true);
          }),
          sampler: fromCallback(() => () => {}),
        },
        actions: {
          // A store that throws, for one entry's ready announcement.
          recordReady: ({ context }) => {
            if (options.failReady?.(context.name)) throw new Error(`store exploded for ${context.name}`);
          },
        },
      }),
      rules: rulesMachine.provide({
        actions: {
          recordReports: ({ event }) => {
            const { reports } = event as Extract<RulesEvent, { type: 'reports.batch' }>;
            if (reports.some((r) => options.failRules?.(r))) throw new Error('database disk image is malformed');
            recorded.push(...reports);
          },
        },
      }),
    },
  });
  const root = createActor(machine, {
    input: { entries: ['A', 'B'], rules: { entries: ['A', 'B'], staged: RULES, active: RULES } },
  }).start();
  const workerOf = (name: string) => workers.filter((w) => w.input.name === name).at(-1)!;
  const start = (name: string) => {
    root.system.get(`entry:${name}`)!.send({ type: 'entry.start' });
    workerOf(name).sendBack({ type: 'worker.ready', pid: 100 + workers.length });
  };
  return { root, workers, workerOf, recorded, reported, start };
}

describe('daemon machine', () => {
  it('reports a rules actor that fails and starts it again with the rules it had, while the entries carry on', () => {
    let failOnce = true;
    const d = startDaemon({ failRules: (r) => r.type === 'file.deleted' && failOnce && !(failOnce = false) });
    d.start('A');
    d.start('B');
    d.root.system.get('rules')!.send({ type: 'rules.stage', rules: STAGED });

    const boom: WorkerReport = { type: 'file.deleted', entry: 'A', path: 'boom.txt' };
    d.workerOf('A').sendBack({ type: 'worker.reports', reports: [boom] });
    expect(d.reported).toEqual([{ actor: 'rules', error: expect.objectContaining({ message: 'database disk image is malformed' }) }]);
    expect(d.root.getSnapshot().context.restarts).toBe(1);

    const rules = d.root.system.get('rules')!;
    expect(rules.getSnapshot().status).toBe('active');
    expect(rules.getSnapshot().value).toBe('ready');
    expect(rules.getSnapshot().context).toMatchObject({ staged: STAGED, active: RULES });
    // The entries never stopped: their workers run, and their reports reach the new rules actor.
    expect(d.workers.map((w) => w.stopped)).toEqual([false, false]);
    const next: WorkerReport = { type: 'file.deleted', entry: 'B', path: 'next.txt' };
    d.workerOf('B').sendBack({ type: 'worker.reports', reports: [next] });
    expect(d.recorded).toEqual([next]);
  });

  it('reports an entry actor that fails and starts it again; the other entry carries on', () => {
    let failOnce = true;
    const d = startDaemon({ failReady: (name) => name === 'A' && failOnce && !(failOnce = false) });
    d.start('B');
    const first = d.workerOf('B');
    d.root.system.get('entry:A')!.send({ type: 'entry.start' });
    d.workerOf('A').sendBack({ type: 'worker.ready', pid: 7 });
    expect(d.reported).toEqual([{ actor: 'entry:A', error: expect.objectContaining({ message: 'store exploded for A' }) }]);

    // A new entry actor, started again: a new worker, not the failed one's.
    const a = d.root.system.get('entry:A')!;
    expect(a.getSnapshot().status).toBe('active');
    expect(a.getSnapshot().value).toEqual({ active: 'starting' });
    const workersOfA = d.workers.filter((w) => w.input.name === 'A');
    expect(workersOfA).toHaveLength(2);
    expect(workersOfA[0]!.stopped).toBe(true);
    d.workerOf('A').sendBack({ type: 'worker.ready', pid: 8 });
    expect(a.getSnapshot().matches({ active: 'running' })).toBe(true);
    // B never noticed.
    expect(first.stopped).toBe(false);
    expect(d.root.system.get('entry:B')!.getSnapshot().matches({ active: 'running' })).toBe(true);
  });

  it('pauses every entry when the store cannot record a change, each to start again after its back-off', () => {
    vi.useFakeTimers();
    try {
      const d = startDaemon();
      d.start('A');
      d.start('B');
      d.root.system.get('rules')!.send({ type: 'store.failed', reason: "the store's disk is full: database or disk is full" });
      for (const name of ['A', 'B']) {
        const snapshot = d.root.system.get(`entry:${name}`)!.getSnapshot();
        expect(snapshot.value).toBe('restarting');
        expect(snapshot.context.lastError).toBe("the store's disk is full: database or disk is full");
      }
      expect(d.workers.every((w) => w.stopped)).toBe(true);
      vi.advanceTimersByTime(20_000);
      for (const name of ['A', 'B']) expect(d.root.system.get(`entry:${name}`)!.getSnapshot().value).toEqual({ active: 'starting' });
    } finally {
      vi.useRealTimers();
    }
  });
});
