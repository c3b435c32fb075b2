import type { FastifyPluginAsync, RawServerDefault } from 'fastify';
import type { AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import { ApiError } from '../errors.js';
import type { SchemaTypes } from '../json-schema.js';
import { errorSchema, eventsQuery, machinesSchema, transfersSchema, type Machines } from '../schemas.js';
import { entryMachine, type EntryContext } from '../../../machines/entry.js';
import { rulesMachine, type RulesContext } from '../../../machines/rules.js';
import { statePath, toMermaid } from '../../observe/mermaid.js';
import type { LoggedEvent } from '../../observe/event-log.js';

/** A comment line keeps idle event streams open through proxies. */
const HEARTBEAT_MS = 15_000;

/** Definitions as JSON (state nodes become their ids), computed once. */
const definitions = {
  entry: JSON.parse(JSON.stringify(entryMachine.toJSON())) as Record<string, unknown>,
  rules: JSON.parse(JSON.stringify(rulesMachine.toJSON())) as Record<string, unknown>,
};

const EVENTS_DESCRIPTION =
  'A text/event-stream. Each event has an `id`, an `event` (its type) and `data`, one JSON object with `id`, ' +
  '`time` (epoch seconds) and `type`: `transition` (`actor`, `entry`, `from`, `to`, `event`), `file` (`kind`: ' +
  'changed, transferred, deleted, moved or conflict; `entry`, `path`, and `from` or `conflict`) or `progress` ' +
  '(`entry`, `job`, `path`, `bytes`, `size`). A `gap` event (`since`, `firstId`) says events were lost. ' +
  'The Last-Event-ID header, or ?since=ID, resumes after an id; with a token, ?access_token= may carry it.';

const sse = (event: LoggedEvent) => `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;

export const observeRoutes: FastifyPluginAsync<ApiContext, RawServerDefault, SchemaTypes> = async (app, ctx) => {
  /** Every live actor with its state and a summary of its context. */
  const actors = (): Machines['actors'] => {
    const list: Machines['actors'] = [];
    const rules = ctx.system.get('rules') as AnyActorRef;
    const rs = rules.getSnapshot();
    const rc = rs.context as RulesContext;
    list.push({
      id: 'rules',
      machine: 'rules',
      state: rs.value as string | Record<string, unknown>,
      path: statePath(rs.value),
      context: { staged: rc.staged.length, active: rc.active.length, lastError: rc.lastError },
    });
    for (const name of ctx.entries.keys()) {
      const s = (ctx.system.get(`entry:${name}`) as AnyActorRef).getSnapshot();
      const c = s.context as EntryContext;
      list.push({
        id: `entry:${name}`,
        machine: 'entry',
        entry: name,
        state: s.value as string | Record<string, unknown>,
        path: statePath(s.value),
        context: {
          queue: ctx.store.countJobs(name),
          restarts: c.restarts,
          failures: c.failures,
          lastError: c.lastError,
          pid: c.pid,
          // Folders watched (one inotify watch each) and polled (the kernel refused a watch).
          watch: c.watch ? { folders: c.watch.folders, watched: c.watch.watched, polled: c.watch.polled } : null,
        },
      });
    }
    return list;
  };

  app.get(
    '/debug/machines',
    {
      schema: {
        operationId: 'getMachines',
        tags: ['observe'],
        summary: "Each machine's definition (toJSON and mermaid) and every running actor's state and context summary.",
        response: { 200: machinesSchema },
      },
    },
    async () => ({
      machines: definitions,
      mermaid: { entry: toMermaid(definitions.entry), rules: toMermaid(definitions.rules) },
      actors: actors(),
    }),
  );

  app.get(
    '/transfers',
    {
      schema: {
        operationId: 'getTransfers',
        tags: ['observe'],
        summary: 'Queued and running jobs per entry, with bytes done, size and rate.',
        response: { 200: transfersSchema },
      },
    },
    async () => ({
      entries: [...ctx.entries.keys()].map((name) => ({
        name,
        queued: ctx.store.countQueued(name),
        running: ctx.board.runningOf(name).map((t) => ({ ...t, started: t.started / 1000 })),
        waiting: ctx.store.queuedList(name, 100),
      })),
    }),
  );

  // Server-Sent Events: every transition, file event and transfer progress, each with an id.
  // A client that reconnects with ?since=ID (or EventSource's Last-Event-ID) misses nothing
  // still in the backlog; an older id gets a `gap` event saying what was lost.
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of streams) end();
  });
  app.get(
    '/events',
    {
      schema: {
        operationId: 'streamEvents',
        tags: ['observe'],
        summary: 'Server-Sent Events: transitions, file events and transfer progress; ?since=ID resumes after an id.',
        description: EVENTS_DESCRIPTION,
        stream: { mediaType: 'text/event-stream', description: 'A stream of Server-Sent Events, open until the client leaves' },
        querystring: eventsQuery,
        // The stream itself is written by hand (text/event-stream): only its errors are JSON.
        response: { 400: errorSchema },
      },
    },
    async (request, reply) => {
      const header = request.headers['last-event-id'];
      let since = request.query.since ?? null;
      // EventSource reconnects to the URL it was opened with (its ?since included) and adds the
      // id it saw last: the header is the newer word.
      if (typeof header === 'string') {
        if (!/^\d+$/.test(header)) throw new ApiError(400, 'Last-Event-ID must be an event id');
        since = Number(header);
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        Connection: 'keep-alive',
        Vary: 'Accept',
        'X-Accel-Buffering': 'no',
      });
      res.write(`retry: 1000\n: ferry events, last id ${ctx.events.lastId}\n\n`);
      if (since !== null) {
        // Older than the backlog, or newer than any event (an id from an earlier run of the
        // daemon, whose ids start at 1 again): events were lost; the whole backlog follows.
        const lost = since < ctx.events.firstId - 1 || since > ctx.events.lastId;
        if (lost) {
          res.write(`event: gap\ndata: ${JSON.stringify({ since, firstId: ctx.events.firstId })}\n\n`);
        }
        for (const event of ctx.events.since(lost ? 0 : since)) res.write(sse(event));
      }
      const unsubscribe = ctx.events.subscribe((event) => res.write(sse(event)));
      const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
      heartbeat.unref();
      const end = () => {
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(end);
        res.end();
      };
      streams.add(end);
      request.raw.on('close', end);
    },
  );
};
