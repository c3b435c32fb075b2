import { enqueueActions, setup } from 'xstate';
import { entryMachine } from './entry.js';
import { rulesMachine, type RulesInput } from './rules.js';

/**
 * The root of the actor system: it spawns the rules actor (system id `rules`) and one entry
 * actor per configured entry (system id `entry:NAME`), so that they can reach one another.
 */

export interface DaemonInput {
  entries: string[];
  rules: RulesInput;
}

export const daemonMachine = setup({
  types: {
    context: {} as DaemonInput,
    input: {} as DaemonInput,
  },
  actors: {
    entry: entryMachine,
    rules: rulesMachine,
  },
}).createMachine({
  id: 'ferry',
  description: 'The daemon: the rules actor and one actor per entry.',
  context: ({ input }) => input,
  initial: 'running',
  states: {
    running: {
      description: 'The rules actor and every entry actor run.',
      entry: enqueueActions(({ enqueue, context }) => {
        enqueue.spawnChild('rules', { id: 'rules', systemId: 'rules', input: context.rules });
        for (const name of context.entries) {
          enqueue.spawnChild('entry', { id: `entry:${name}`, systemId: `entry:${name}`, input: { name } });
        }
      }),
    },
  },
});
