import type { FastifyPluginAsync, RawServerDefault } from 'fastify';
import { waitFor, type AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import { ApiError } from '../errors.js';
import type { SchemaTypes } from '../json-schema.js';
import {
  entriesSchema,
  entryActionSchema,
  entrySchema,
  entryStatsSchema,
  entryStatusSchema,
  errorSchema,
  nameParams,
  startQuery,
  type Entry,
  type EntryState,
} from '../schemas.js';
import type { EntryConfig } from '../../entry-config.js';
import type { EntryContext } from '../../../machines/entry.js';

/** How long start, stop and restart wait for the entry to reach its state. */
const STATE_TIMEOUT_MS = 30_000;

/** How long stats wait for the first sample of a worker that has just started. */
const SAMPLE_TIMEOUT_MS = 5000;
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

/**
 * The entry as written in the setup (secrets given inline masked), (local roots) the absolute
 * folder it keeps, and the ignore patterns in force: as its worker last reported them, else as
 * the store or the setup has them.
 */
const describe = (e: EntryConfig, actor: AnyActorRef | undefined, stored: string[] | null): Entry => {
  // The setup says which folder an entry keeps (none for a remote one); a config made by hand, its root.
  const folder = e.folder !== undefined ? e.folder : typeof e.resolved.root === 'string' ? e.resolved.root : null;
  const ignore = (actor?.getSnapshot().context as EntryContext | undefined)?.ignore ?? stored ?? e.ignore ?? [];
  return { name: e.name, driver: e.driver, options: e.options, ...(folder ? { root_path: folder } : {}), ignore };
};

/** The entry's status as the API shows it: the top-level state of its actor. */
export function statusOf(actor: AnyActorRef): EntryState {
  const value = actor.getSnapshot().value as string | Record<string, unknown>;
  return (typeof value === 'string' ? value : Object.keys(value)[0]) as EntryState;
}

/** Errors every PUT can meet before its handler runs: a body that is not JSON, too big, or of another type. */
const bodyErrors = { 400: errorSchema, 413: errorSchema, 415: errorSchema } as const;

export const entriesRoutes: FastifyPluginAsync<ApiContext, RawServerDefault, SchemaTypes> = async (app, ctx) => {
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
        operationId: 'listEntries',
        tags: ['entries'],
        summary: 'List all the entries.',
        response: { 200: entriesSchema },
      },
    },
    async () => ({
      entries: [...ctx.entries.values()].map((e) => describe(e, ctx.system.get(`entry:${e.name}`), ctx.store.ignores.get(e.name))),
    }),
  );

  app.get(
    '/entries/:name',
    {
      schema: {
        operationId: 'getEntry',
        tags: ['entries'],
        summary: 'Return the description of a given entry.',
        params: nameParams,
        response: { 200: entrySchema, 404: errorSchema },
      },
    },
    async (request) => {
      const { config, actor } = find(request.params.name);
      return describe(config, actor, ctx.store.ignores.get(config.name));
    },
  );

  app.get(
    '/entries/:name/status',
    {
      schema: {
        operationId: 'getEntryStatus',
        tags: ['entries'],
        summary: 'Return the status of a given entry: active, stopped or restarting.',
        params: nameParams,
        response: { 200: entryStatusSchema, 404: errorSchema },
      },
    },
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

  app.get(
    '/entries/:name/stats',
    {
      schema: {
        operationId: 'getEntryStats',
        tags: ['entries'],
        summary: "Return the stats of a given entry's worker process.",
        params: nameParams,
        response: { 200: entryStatsSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { actor } = find(name);
      const running = (s: { matches(v: unknown): boolean }) => s.matches({ active: 'running' });
      if (!running(actor.getSnapshot())) throw new ApiError(409, `entry ${name} is not running`);
      // The entry's sampler has its first figures half a second after the worker is ready.
      const settled = await waitFor(actor, (s) => !running(s) || (s.context as EntryContext).sample !== null, {
        timeout: SAMPLE_TIMEOUT_MS,
      }).catch(() => actor.getSnapshot());
      const { sample, restarts, connection } = settled.context as EntryContext;
      if (!running(settled) || sample === null) throw new ApiError(409, `entry ${name} is not running`);
      const { info } = sample;
      // Remote entries: whether the server is reached, and what was copied in.
      const counters = ctx.board.count(name);
      const link = connection
        ? { connection: { ...connection, bytes_transferred: counters.bytesTransferred, files_transferred: counters.filesTransferred } }
        : {};
      return { info: { ...info, restarts }, name, status: 'ok' as const, time: now(), ...link };
    },
  );

  app.put(
    '/entries/:name/rescan',
    {
      schema: {
        operationId: 'rescanEntry',
        tags: ['entries'],
        summary:
          "Compare the entry's whole storage with the store now, by stat, and answer once what was found is recorded and queued " +
          '(every entry also does so every rescan_interval seconds: a watcher misses the events the kernel drops).',
        params: nameParams,
        response: { 200: entryActionSchema, ...bodyErrors, 404: errorSchema, 409: errorSchema, 503: errorSchema },
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
      return { name, status: 'ok' as const, time: now() };
    },
  );

  const controls = {
    start: { operationId: 'startEntry', summary: 'Start a given entry.' },
    stop: { operationId: 'stopEntry', summary: 'Stop a given entry.' },
    restart: { operationId: 'restartEntry', summary: 'Stop and start a given entry.' },
  } as const;
  for (const control of ['start', 'stop', 'restart'] as const) {
    app.put(
      `/entries/:name/${control}`,
      {
        schema: {
          ...controls[control],
          tags: ['entries'],
          params: nameParams,
          ...(control === 'start' ? { querystring: startQuery } : {}),
          response: { 200: entryActionSchema, ...bodyErrors, 404: errorSchema, 409: errorSchema, 503: errorSchema },
        },
      },
      async (request) => {
        const { name } = request.params;
        const { actor } = find(name);
        // A forced start applies what a start otherwise refuses: mass deletions.
        const force = control === 'start' && (request.query as { force?: boolean }).force === true;
        const event = force ? { type: 'entry.start', force: true } : { type: `entry.${control}` };
        if (!actor.getSnapshot().can(event)) throw new ApiError(409, refusal[control](name));
        actor.send(event);
        const target = control === 'stop' ? 'stopped' : 'active';
        // A start or restart settles once the worker is running or refused; a worker draining
        // (one asked to stop, which restarts once it exits) is on its way, not settled.
        const settled = await waitFor(
          actor,
          // A stop is done once the worker has drained: stopped, or started again by a request that
          // came after it (both answered; the later one says where the entry ends).
          (s) =>
            control === 'stop'
              ? s.matches('stopped') || !s.matches({ active: 'draining' })
              : !s.matches({ active: 'starting' }) && !s.matches({ active: 'draining' }),
          { timeout: STATE_TIMEOUT_MS },
        ).catch(() => {
          throw new ApiError(503, `entry ${name} did not become ${target} within ${STATE_TIMEOUT_MS / 1000} s`);
        });
        if (control !== 'stop' && !settled.matches({ active: 'running' })) {
          const reason = (settled.context as { lastError: string | null }).lastError ?? statusOf(actor);
          throw new ApiError(409, `entry ${name} could not start: ${reason}`);
        }
        return { name, status: 'ok' as const, time: now() };
      },
    );
  }
};
