import { fromPromise } from 'xstate';
import type { Logger } from 'pino';
import { rulesMachine, type Rule, type RulesChange, type RulesEvent } from '../machines/rules.js';
import { storeFailure } from './store/store-failure.js';
import { writeSetupRules } from './setup.js';
import type { Catalogue } from './store/catalogue.js';
import type { SyncEngine } from './sync/engine.js';

/**
 * The rules machine with what src gives it: recording the entries' reports in the catalogue,
 * storing staged rules, previewing and applying rules.
 */

export interface RulesDeps {
  engine: Pick<SyncEngine, 'handleBatch' | 'requeue' | 'diff' | 'applyRules'>;
  store: Pick<Catalogue, 'grouped' | 'putRules'>;
  log: Pick<Logger, 'error' | 'warn' | 'info'>;
  /** The setup file the applied rules are written back to. */
  setupFile: string;
}

type Reports = Extract<RulesEvent, { type: 'reports.batch' }>;

/**
 * The `recordReports` action: one message of a worker, its reports in one catalogue transaction
 * (the finished jobs among them set-based), committed with the others of the next moment. It
 * answers with `jobs.queued` (the entries with new work, and the reporting entry when it finished
 * jobs), `entry.refused` (a scan that would delete most of an entry's files), `entry.rescanAll`
 * (a scan that left out folders the store changed meanwhile) and `store.failed` (the store
 * cannot write).
 */
export function recordReports(deps: Pick<RulesDeps, 'engine' | 'store' | 'log'>) {
  const { engine, store, log } = deps;
  return ({ event, self }: { event: RulesEvent; self: { send(event: RulesEvent): void } }) => {
    const { entry, reports } = event as Reports;
    if (reports.length === 0) return;
    let result: ReturnType<SyncEngine['handleBatch']>;
    try {
      result = store.grouped(() => engine.handleBatch(reports));
    } catch (err) {
      // Nothing of the batch was recorded: its finished jobs go back to the queue (the entry's
      // next worker requeues them if the store refuses even that).
      try {
        engine.requeue(reports.flatMap((r) => (r.type === 'job.finished' ? [r.jobId] : [])));
      } catch {
        // left running: requeued when the entry's next worker starts
      }
      const failure = storeFailure(err);
      if (!failure) throw err;
      // Every entry pauses, and each rescans against the store when it starts again, which
      // finds what this batch said.
      log.error({ entry, err: (err as Error).message }, failure);
      self.send({ type: 'store.failed', reason: failure });
      return;
    }
    const { refused, stale } = result;
    if (stale) {
      log.warn({ entry: stale.entry, folders: stale.folders }, stale.message);
      self.send({ type: 'entry.rescanAll', entry: stale.entry });
    }
    if (refused) {
      log.warn({ entry: refused.entry, missing: refused.missing, total: refused.total }, refused.message);
      self.send({ type: 'entry.refused', entry: refused.entry, reason: refused.message });
    }
    // Jobs the entry finished free its slots: it takes more now that they are recorded (and
    // learns when one that failed is due again). One announcement, one dispatch, per message.
    const touched = [...result.touched];
    if (!touched.includes(entry) && reports.some((r) => r.type === 'job.finished')) touched.push(entry);
    if (touched.length > 0) self.send({ type: 'jobs.queued', entries: touched });
  };
}

export function provideRules(deps: RulesDeps) {
  const { engine, store, log } = deps;
  return rulesMachine.provide({
    actions: {
      recordReports: recordReports(deps),
      persistStaged: ({ event }) => {
        store.putRules('staged', (event as { rules: Rule[] }).rules);
      },
    },
    actors: {
      previewRules: fromPromise<{ id: number; rules: Rule[]; changes: RulesChange[] }, { id: number; rules: Rule[] }>(
        async ({ input }) => ({ ...input, changes: engine.diff(input.rules) }),
      ),
      applyRules: fromPromise<string[], { rules: Rule[] }>(async ({ input }) => {
        // The setup file first: if it cannot be written, nothing has changed. If the store then
        // failed, the next start would see the file's rules differ and apply them.
        writeSetupRules(deps.setupFile, input.rules);
        const touched = engine.applyRules(input.rules);
        store.putRules('staged', input.rules);
        log.info({ rules: input.rules.length }, 'rules reloaded');
        return touched;
      }),
    },
  });
}
