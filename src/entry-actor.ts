import { assign, fromPromise } from 'xstate';
import type { Logger } from 'pino';
import { entryMachine, type TakenJobs, type TakeJobsInput } from '../machines/entry.js';
import { isRunning, workerActor } from './entry-worker.js';
import { samplerActor } from './worker-sampler.js';
import { storeFailure } from './store/store-failure.js';
import type { Catalogue } from './store/catalogue.js';
import type { EntryConfig, SyncEngine } from './sync/engine.js';
import type { EventLog } from './observe/event-log.js';
import type { SpareWorkers } from './worker-fork.js';
import type { TransferBoard } from './observe/transfer-board.js';

/**
 * The entry machine with what src gives it: the worker process adapter, the sampler, and the
 * parts of the dispatch that read the store or the clock (taking jobs, the mass-deletion check,
 * putting back what a worker left, the retry delay).
 */

export interface EntryDeps {
  entries: ReadonlyMap<string, EntryConfig>;
  engine: SyncEngine;
  store: Catalogue;
  log: Logger;
  board: TransferBoard;
  events: EventLog;
  /** Every worker process ever started registers its exit here, so shutdown can await them. */
  track(exited: Promise<void>): void;
  /** Back-off before a worker is started again after `failures` consecutive failures. */
  restartDelay(failures: number): number;
  /** Workers forked ahead (by `ferry start`), taken before forking new ones. */
  spares?: SpareWorkers;
  /** Called each time jobs are taken for a worker (the daemon's start waits for the first). */
  jobsTaken?: () => void;
}

/** Slack after a retry's due time, so that the job is due when the dispatch asks for it. */
const RETRY_SLACK_MS = 5;

/**
 * Why the entry's start or dispatch is refused: rules that would delete most of its files (a
 * reload that bans it from them), unless it was started with --force. Null when nothing is.
 * Deletions made in another entry are guarded where they are found: by that entry's rescan.
 */
export function massDeletion(deps: Pick<EntryDeps, 'store' | 'engine'>, name: string, force: boolean): string | null {
  if (force) return null;
  const deletes = deps.store.countRuleDeletes(name);
  // No deletion is never a mass deletion: the count of the entry's files is not needed.
  if (deletes === 0) return null;
  const total = deps.store.countReplicas(name);
  if (!deps.engine.isMassDeletion(deletes, total)) return null;
  return `the rules would delete ${deletes} of the ${total} files of ${name}; refusing (check the rules, then start it with --force to apply them)`;
}

export function provideEntry(deps: EntryDeps) {
  const { engine, store, log, board, events } = deps;
  return entryMachine.provide({
    actors: {
      worker: workerActor(deps),
      sampler: samplerActor(),
      takeJobs: fromPromise<TakenJobs, TakeJobsInput>(async ({ input, system }) => {
        try {
          // Rules reloaded since the start may ban the entry from most of its files.
          const refusal = massDeletion(deps, input.name, input.force);
          if (refusal) {
            log.warn({ entry: input.name }, refusal);
            return { refusal, jobs: [], nextDue: null };
          }
          const jobs = engine.takeJobs(input.name, input.limit, (n) => isRunning(system, n), new Set(input.inFlight), input.maxBytes);
          if (jobs.length > 0) deps.jobsTaken?.();
          const due = store.nextDue(input.name);
          return { refusal: null, jobs, nextDue: due !== null && due > Date.now() ? due : null };
        } catch (err) {
          const failure = storeFailure(err);
          if (!failure) throw err;
          // Every entry pauses, this one with the rest: the rules actor tells them.
          log.error({ entry: input.name, err: (err as Error).message }, failure);
          system.get('rules')?.send({ type: 'store.failed', reason: failure });
          throw new Error(failure, { cause: err });
        }
      }),
    },
    guards: {
      massDeletionRefused: ({ context }) => massDeletion(deps, context.name, context.force) !== null,
    },
    actions: {
      recordRefusal: assign({
        lastError: ({ context }) => {
          const reason = massDeletion(deps, context.name, context.force) ?? `the rules would delete most of the files of ${context.name}`;
          log.warn({ entry: context.name }, reason);
          return reason;
        },
      }),
      requeueJobs: ({ context }) => {
        const ids = [...context.inflight.keys()];
        if (ids.length === 0) return;
        try {
          engine.requeue(ids);
        } catch (err) {
          // The store refuses even that: the entry's next worker requeues them as it starts.
          log.error({ entry: context.name, err: (err as Error).message }, 'could not requeue the jobs of a worker that stopped');
        }
      },
      showProgress: ({ context }, params) => {
        const { jobId, bytes } = params as { jobId: number; bytes: number };
        const t = board.progress(context.name, jobId, bytes);
        if (t) events.emit({ type: 'progress', entry: context.name, job: t.id, path: t.filename, bytes: t.bytes, size: t.size });
      },
      showConflict: ({ context }, params) => {
        const { path, conflict } = params as { path: string; conflict: string };
        events.emit({ type: 'file', kind: 'conflict', entry: context.name, path, conflict });
      },
      recordVersions: ({ context }, params) => {
        try {
          store.grouped(() => store.versions.record(context.name, params.change));
        } catch (err) {
          log.error({ entry: context.name, err: (err as Error).message }, 'could not record the versions the worker keeps');
        }
      },
      applyIgnore: ({ context, system }, params) => {
        let touched: string[];
        try {
          touched = store.grouped(() => engine.setIgnore(context.name, params.patterns));
        } catch (err) {
          const failure = storeFailure(err);
          log.error({ entry: context.name, err: (err as Error).message }, failure ?? 'could not apply the ignore patterns the worker applies');
          if (failure) system.get('rules')?.send({ type: 'store.failed', reason: failure });
          return;
        }
        // The entries with new work (a pattern removed: files this entry owns again) are told.
        if (touched.length > 0) system.get('rules')?.send({ type: 'jobs.queued', entries: touched });
      },
    },
    delays: {
      backoff: ({ context }) => deps.restartDelay(context.failures),
      retryDue: ({ context }) => (context.nextRetry === null ? 0 : Math.max(0, context.nextRetry - Date.now()) + RETRY_SLACK_MS),
    },
  });
}
