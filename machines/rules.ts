import { assign, enqueueActions, setup, type PromiseActorLogic } from 'xstate';
import type { WorkerReport } from './reports.js';

/**
 * The rules actor: holds the staged and the active rules, takes every change the entries
 * report, and pushes jobs to the entries that must act on them.
 *
 * The catalogue work (recording changes, computing owners, queueing jobs) is the injected
 * action `recordReports` and the injected actor `applyRules`; both answer with `jobs.queued`
 * naming the entries that have new work, which this machine announces to them. What
 * `recordReports` cannot record answers with `entry.refused` (a mass deletion: that entry stops)
 * or `store.failed` (the store cannot write: every entry pauses).
 */

export interface Rule {
  match: { path: string; mime?: string[] };
  sync?: string[];
  ban?: string[];
}

export interface RulesInput {
  /** Names of every configured entry. */
  entries: string[];
  staged: Rule[];
  active: Rule[];
}

/** For one file whose owners a set of rules would change: the entries it would gain and lose. */
export interface RulesChange {
  fid: string;
  filename: string;
  gain: string[];
  lose: string[];
}

export interface RulesContext {
  entries: string[];
  staged: Rule[];
  active: Rule[];
  lastError: string | null;
  /** Previews asked (rules.preview), each numbered, and the last one computed. */
  previewsAsked: number;
  preview: { id: number; rules: Rule[]; changes: RulesChange[] } | null;
}

export type RulesEvent =
  /**
   * What one message of an entry's worker reported, in order, relayed by its entry actor:
   * recorded in one catalogue transaction.
   */
  | { type: 'reports.batch'; entry: string; reports: WorkerReport[] }
  | { type: 'rules.stage'; rules: Rule[] }
  | { type: 'rules.reload' }
  /** Compute what reloading the staged rules would change (a preview, kept in the context). */
  | { type: 'rules.preview' }
  | { type: `xstate.done.actor.preview.${number}`; output: { id: number; rules: Rule[]; changes: RulesChange[] } }
  | { type: 'entry.ready'; entry: string }
  | { type: 'jobs.queued'; entries: string[] }
  /** Recording a report was refused (a mass deletion): the entry stops, with this reason. */
  | { type: 'entry.refused'; entry: string; reason: string }
  /** An entry's scan could not be compared with the store (it changed meanwhile): the entry starts again and lists every file. */
  | { type: 'entry.rescanAll'; entry: string }
  /**
   * The store could not record a change (a full or failing disk): every entry pauses, so that
   * nothing more is done that the store cannot record; each rescans against the store when it
   * starts again, which finds whatever was not recorded.
   */
  | { type: 'store.failed'; reason: string };

export const rulesMachine = setup({
  types: {
    context: {} as RulesContext,
    events: {} as RulesEvent,
    input: {} as RulesInput,
  },
  actors: {
    // Implemented in src: applies the given rules to every known file; resolves to the
    // names of the entries that got new jobs.
    applyRules: {} as PromiseActorLogic<string[], { rules: Rule[] }>,
    // Implemented in src: what applying the given rules to every known file would change.
    previewRules: {} as PromiseActorLogic<{ id: number; rules: Rule[]; changes: RulesChange[] }, { id: number; rules: Rule[] }>,
  },
  guards: {
    stagedDiffers: ({ context }) => JSON.stringify(context.staged) !== JSON.stringify(context.active),
  },
  actions: {
    // Implemented in src: records a batch of reports in the catalogue and queues jobs; answers
    // with jobs.queued, entry.refused or store.failed.
    recordReports: () => {},
    // Implemented in src: writes the staged rules to the store so they survive a restart.
    persistStaged: () => {},
    stage: assign({
      staged: ({ event }) => (event as Extract<RulesEvent, { type: 'rules.stage' }>).rules,
    }),
    announceJobs: enqueueActions(({ event, enqueue, system }) => {
      const names = (event as Extract<RulesEvent, { type: 'jobs.queued' }>).entries;
      for (const name of names) {
        if (system.get(`entry:${name}`)) enqueue.sendTo(system.get(`entry:${name}`), { type: 'jobs.available' });
      }
    }),
    refuseEntry: enqueueActions(({ event, enqueue, system }) => {
      const e = event as Extract<RulesEvent, { type: 'entry.refused' }>;
      const entry = system.get(`entry:${e.entry}`);
      const refuse: { type: 'entry.refuse'; reason: string } = { type: 'entry.refuse', reason: e.reason };
      if (entry) enqueue.sendTo(entry, refuse);
    }),
    restartEntry: enqueueActions(({ event, enqueue, system }) => {
      const entry = system.get(`entry:${(event as Extract<RulesEvent, { type: 'entry.rescanAll' }>).entry}`);
      const restart: { type: 'entry.restart' } = { type: 'entry.restart' };
      if (entry) enqueue.sendTo(entry, restart);
    }),
    suspendEntries: enqueueActions(({ event, enqueue, system, context }) => {
      const reason = (event as Extract<RulesEvent, { type: 'store.failed' }>).reason;
      for (const name of context.entries) {
        const entry = system.get(`entry:${name}`);
        const suspend: { type: 'entry.suspend'; reason: string } = { type: 'entry.suspend', reason };
        if (entry) enqueue.sendTo(entry, suspend);
      }
    }),
    startPreview: enqueueActions(({ enqueue, context }) => {
      const id = context.previewsAsked + 1;
      enqueue.assign({ previewsAsked: id });
      enqueue.spawnChild('previewRules', { id: `preview.${id}`, input: { id, rules: context.staged } });
    }),
    keepPreview: assign({
      preview: ({ event }) => (event as { output: { id: number; rules: Rule[]; changes: RulesChange[] } }).output,
    }),
    // A newly ready entry can serve as a source: every entry may now have work it could not do.
    announceToAll: enqueueActions(({ enqueue, system, context }) => {
      for (const name of context.entries) {
        if (system.get(`entry:${name}`)) enqueue.sendTo(system.get(`entry:${name}`), { type: 'jobs.available' });
      }
    }),
  },
}).createMachine({
  id: 'rules',
  description: 'Holds the staged and active rules and turns every change into jobs for the entries.',
  context: ({ input }) => ({
    entries: input.entries,
    staged: input.staged,
    active: input.active,
    lastError: null,
    previewsAsked: 0,
    preview: null,
  }),
  initial: 'ready',
  on: {
    'reports.batch': { actions: 'recordReports' },
    'jobs.queued': { actions: 'announceJobs' },
    'entry.ready': { actions: 'announceToAll' },
    'entry.refused': { actions: 'refuseEntry' },
    'entry.rescanAll': { actions: 'restartEntry' },
    'store.failed': { actions: 'suspendEntries' },
    'rules.preview': { actions: 'startPreview' },
    'xstate.done.actor.preview.*': { actions: 'keepPreview' },
  },
  states: {
    ready: {
      description: 'The active rules are in force; staged rules wait for a reload.',
      on: {
        'rules.stage': { actions: ['stage', 'persistStaged'] },
        'rules.reload': [
          { guard: 'stagedDiffers', target: 'reloading' },
          // A target (itself, not re-entered) so that `snapshot.can` accepts the event: xstate
          // counts a transition with neither target nor actions as refused, and the API answers 409.
          { target: 'ready', description: 'The staged rules are the active ones: nothing to apply.' },
        ],
      },
    },
    reloading: {
      description: 'The staged rules are applied to every known file, stored, and written back to the setup file.',
      invoke: {
        src: 'applyRules',
        input: ({ context }) => ({ rules: context.staged }),
        onDone: {
          target: 'ready',
          actions: [
            assign({ active: ({ context }) => context.staged, lastError: null }),
            enqueueActions(({ enqueue, event }) => {
              enqueue.raise({ type: 'jobs.queued', entries: event.output });
            }),
          ],
        },
        onError: {
          target: 'ready',
          actions: assign({ lastError: ({ event }) => String((event.error as Error)?.message ?? event.error) }),
        },
      },
    },
  },
});

export type RulesMachine = typeof rulesMachine;
