import type { FastifyPluginAsync } from 'fastify';
import { waitFor, type AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import { ApiError, errorSchema } from '../errors.js';
import { entrySchema, entryStatusSchema, nameParams } from '../schemas.js';
import type { EntryConfig } from '../../sync/engine.js';
import { processInfo } from '../../process-stats.js';
import type { EntryContext } from '../../../machines/entry.js';
import { publicOptions } from '../../drivers/registry.js';

/** How long start, stop and restart wait for the entry to reach its state. */
const STATE_TIMEOUT_MS = 30_000;

/** How long a rescan may take before the API answers 503 (it goes on): a million files take a while. */
const RESCAN_TIMEOUT_MS = 600_000;

type Control = 'start' | 'stop' | 'restart';

/** The spec's reason when the entry's state does not take the event. */
const refusal: Record<Control, (name: string) => string> = {
  start: (name) => `entry ${name} is already running`,
  stop: (name) => `entry ${name} is already stopped`,
  restart: (name) => `entry ${name} is not running`,
};

const now = () => Date.now() / 1000;

const describe = (e: EntryConfig) => ({ name: e.name, driver: e.driver, options: publicOptions(e.driver, e.options) });

/** The entry's status as the API shows it: the top-level state of its actor. */
export function statusOf(actor: AnyActorRef): string {
  const value = actor.getSnapshot().value as string | Record<string, unknown>;
  return typeof value === 'string' ? value : Object.keys(value)[0];
}

export const entriesRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  const find = (name: string) => {
    const config = ctx.entries.get(name);
    const actor = config && ctx.system.get(`entry:${name}`);
    if (!config || !actor) throw new ApiError(404, `entry ${name} not found`);
    return { config, actor: actor as AnyActorRef };
  };

  app.get(
    '/entries',
    {
      schema: {
        response: {
          200: { type: 'object', required: ['entries'], properties: { entries: { type: 'array', items: entrySchema } } },
        },
      },
    },
    async () => ({ entries: [...ctx.entries.values()].map(describe) }),
  );

  app.get<{ Params: { name: string } }>(
    '/entries/:name',
    { schema: { params: nameParams, response: { 200: entrySchema, 404: errorSchema } } },
    async (request) => describe(find(request.params.name).config),
  );

  app.get<{ Params: { name: string } }>(
    '/entries/:name/status',
    { schema: { params: nameParams, response: { 200: entryStatusSchema, 404: errorSchema } } },
    async (request) => {
      const { actor } = find(request.params.name);
      const { lastError, watch, connection } = actor.getSnapshot().context as EntryContext;
      const failing = ctx.store.failingJobs(request.params.name);
      // Said only when there is something to say: why it stopped or restarts, what fails, or
      // what its watcher cannot watch.
      const reasons = [
        lastError,
        failing.count > 0 ? `${failing.count} job(s) failing and retried; last error: ${failing.lastError}` : null,
        watch?.reason ?? null,
        connection?.reason ?? null,
      ].filter((r): r is string => !!r);
      const reason = lastError ?? (reasons.length > 0 ? reasons.join('; ') : null);
      return { name: request.params.name, status: statusOf(actor), time: now(), ...(reason ? { reason } : {}) };
    },
  );

  app.get<{ Params: { name: string } }>(
    '/entries/:name/stats',
    {
      schema: {
        params: nameParams,
        response: {
          200: {
            type: 'object',
            required: ['info', 'name', 'status', 'time'],
            properties: {
              info: {
                type: 'object',
                required: ['age', 'cpu', 'create_time', 'ctime', 'mem', 'mem_info1', 'mem_info2', 'started', 'pid', 'restarts'],
                properties: {
                  age: { type: 'number' },
                  cpu: { type: 'number' },
                  create_time: { type: 'number' },
                  ctime: { type: 'string' },
                  mem: { type: 'number' },
                  mem_info1: { type: 'string' },
                  mem_info2: { type: 'string' },
                  started: { type: 'number' },
                  pid: { type: 'integer' },
                  restarts: { type: 'integer' },
                },
              },
              name: { type: 'string' },
              status: { type: 'string', const: 'ok' },
              time: { type: 'number' },
              // Beyond 1.0, remote entries only: whether the server is reached, and bytes copied in.
              connection: {
                type: 'object',
                properties: {
                  endpoint: { type: 'string' },
                  connected: { type: 'boolean' },
                  reason: { type: ['string', 'null'] },
                  bytes_transferred: { type: 'integer' },
                  files_transferred: { type: 'integer' },
                },
              },
            },
          },
          404: errorSchema,
          409: errorSchema,
        },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { actor } = find(name);
      const snapshot = actor.getSnapshot();
      const { pid, startedAt, restarts, connection } = snapshot.context as EntryContext;
      if (!snapshot.matches({ active: 'running' }) || pid === null || startedAt === null) {
        throw new ApiError(409, `entry ${name} is not running`);
      }
      const info = await processInfo(pid, startedAt).catch(() => {
        throw new ApiError(409, `entry ${name} is not running`);
      });
      const counters = ctx.board.count(name);
      const link = connection
        ? { connection: { ...connection, bytes_transferred: counters.bytesTransferred, files_transferred: counters.filesTransferred } }
        : {};
      return { info: { ...info, restarts }, name, status: 'ok', time: now(), ...link };
    },
  );

  app.put<{ Params: { name: string } }>(
    '/entries/:name/rescan',
    {
      schema: {
        params: nameParams,
        response: { 200: entryStatusSchema, 404: errorSchema, 409: errorSchema, 503: errorSchema },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { actor } = find(name);
      const event = { type: 'entry.rescan' } as const;
      if (!actor.getSnapshot().can(event)) throw new ApiError(409, `entry ${name} is not running`);
      actor.send(event);
      const asked = (actor.getSnapshot().context as EntryContext).rescansAsked;
      const settled = await waitFor(
        actor,
        (s) => (s.context as EntryContext).rescansDone >= asked || !s.matches({ active: 'running' }),
        { timeout: RESCAN_TIMEOUT_MS },
      ).catch(() => {
        throw new ApiError(503, `the rescan of ${name} did not finish within ${RESCAN_TIMEOUT_MS / 1000} s; it goes on`);
      });
      if ((settled.context as EntryContext).rescansDone < asked) throw new ApiError(409, `entry ${name} is not running`);
      return { name, status: 'ok', time: now() };
    },
  );

  for (const control of ['start', 'stop', 'restart'] as const) {
    app.put<{ Params: { name: string }; Querystring: { force?: boolean } }>(
      `/entries/:name/${control}`,
      {
        schema: {
          params: nameParams,
          ...(control === 'start'
            ? { querystring: { type: 'object', properties: { force: { type: 'boolean', default: false } } } }
            : {}),
          response: { 200: entryStatusSchema, 404: errorSchema, 409: errorSchema, 503: errorSchema },
        },
      },
      async (request) => {
        const { name } = request.params;
        const { actor } = find(name);
        // A forced start applies what a start otherwise refuses: mass deletions.
        const event = control === 'start' && request.query.force ? { type: 'entry.start', force: true } : { type: `entry.${control}` };
        if (!actor.getSnapshot().can(event)) throw new ApiError(409, refusal[control](name));
        actor.send(event);
        const target = control === 'stop' ? 'stopped' : 'active';
        const settled = await waitFor(
          actor,
          (s) => (control === 'stop' ? s.matches('stopped') : !s.matches({ active: 'starting' })),
          { timeout: STATE_TIMEOUT_MS },
        ).catch(() => {
          throw new ApiError(503, `entry ${name} did not become ${target} within ${STATE_TIMEOUT_MS / 1000} s`);
        });
        if (control !== 'stop' && !settled.matches({ active: 'running' })) {
          const reason = (settled.context as { lastError: string | null }).lastError ?? statusOf(actor);
          throw new ApiError(409, `entry ${name} could not start: ${reason}`);
        }
        return { name, status: 'ok', time: now() };
      },
    );
  }
};
