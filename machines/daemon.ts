import { enqueueActions, setup } from 'xstate';
import { entryMachine } from './entry.js';
import { rulesMachine, type RulesInput } from './rules.js';

/**
 * The root of the actor system: it spawns the rules actor (system id `rules`) and one entry
 * actor per configured entry (system id `entry:NAME`), so that they can reach one another, and
 * supervises them: an actor that fails is reported and started again, never left dead.
 */

export interface DaemonInput {
  entries: string[];
  rules: RulesInput;
}

export interface DaemonContext extends DaemonInput {
  /** Actors that failed and were started again since the daemon started. */
  restarts: number;
}

/** A child actor failed (an error thrown in one of its actions or actors). */
export type DaemonEvent = { type: `xstate.error.actor.${string}`; error: unknown };

const failedId = (event: { type: string }) => event.type.slice('xstate.error.actor.'.length);

export const daemonMachine = setup({
  types: {
    context: {} as DaemonContext,
    input: {} as DaemonInput,
    events: {} as DaemonEvent,
  },
  actors: {
    entry: entryMachine,
    rules: rulesMachine,
  },
  actions: {
    // Implemented in src: logs the failure and tells the event stream.
    reportActorError: (_, _params: { actor: string; error: unknown }) => {},
    restartFailedActor: enqueueActions(({ enqueue, context, event, self }) => {
      const id = failedId(event);
      // The failed actor's last snapshot: a rules actor starts again with the rules it had.
      const last = self.getSnapshot().children[id]?.getSnapshot() as
        | { context?: Partial<RulesInput>; children?: Record<string, { _stop?(): void } | undefined> }
        | undefined;
      // A failed actor's own children (an entry's worker and sampler) are not stopped with it
      // (xstate 5.33): stopped here, so that no worker process outlives its actor. `_stop` is
      // what xstate's own stopChild calls; `stop()` refuses a child actor.
      const orphans = Object.values(last?.children ?? {});
      enqueue(function stopOrphans() {
        for (const child of orphans) child?._stop?.();
      });
      enqueue.stopChild(id);
      if (id === 'rules') {
        const { staged = context.rules.staged, active = context.rules.active } = last?.context ?? {};
        enqueue.spawnChild('rules', { id, systemId: id, input: { entries: context.rules.entries, staged, active } });
        // What the failed one would have announced is lost with it: every entry looks for work.
        for (const name of context.entries) enqueue.sendTo(`entry:${name}`, { type: 'jobs.available' });
      } else if (id.startsWith('entry:')) {
        const name = id.slice('entry:'.length);
        enqueue.spawnChild('entry', { id, systemId: id, input: { name } });
        // An entry that failed was doing something: it starts again (and rescans).
        enqueue.sendTo(id, { type: 'entry.start' });
      }
      enqueue.assign({ restarts: context.restarts + 1 });
    }),
  },
}).createMachine({
  id: 'ferry',
  description: 'The daemon: the rules actor and one actor per entry, supervised.',
  context: ({ input }) => ({ ...input, restarts: 0 }),
  initial: 'running',
  states: {
    running: {
      description: 'The rules actor and every entry actor run; one that fails is reported and started again.',
      entry: enqueueActions(({ enqueue, context }) => {
        enqueue.spawnChild('rules', { id: 'rules', systemId: 'rules', input: context.rules });
        for (const name of context.entries) {
          enqueue.spawnChild('entry', { id: `entry:${name}`, systemId: `entry:${name}`, input: { name } });
        }
      }),
      on: {
        'xstate.error.actor.*': {
          actions: [
            {
              type: 'reportActorError',
              params: ({ event }) => ({ actor: failedId(event), error: (event as { error: unknown }).error }),
            },
            'restartFailedActor',
          ],
        },
      },
    },
  },
});
