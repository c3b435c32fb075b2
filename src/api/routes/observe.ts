import type { FastifyPluginAsync } from 'fastify';
import type { AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import { ApiError, errorSchema } from '../errors.js';
import { entryMachine, type EntryContext } from '../../../machines/entry.js';
import { rulesMachine, type RulesContext } from '../../../machines/rules.js';
import { statePath, toMermaid } from '../../observe/mermaid.js';
import type { LoggedEvent } from '../../observe/event-log.js';

/** A comment line keeps idle event streams open through proxies. */
const HEARTBEAT_MS = 15_000;

/** Definitions as JSON (state nodes become their ids), computed once. */
const definitions = {
  entry: JSON.parse(JSON.stringify(entryMachine.toJSON())) as unknown,
  rules: JSON.parse(JSON.stringify(rulesMachine.toJSON())) as unknown,
};

const sse = (event: LoggedEvent) => `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;

export const observeRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  /** Every live actor with its state and a summary of its context. */
  const actors = () => {
    const list: unknown[] = [];
    const rules = ctx.system.get('rules') as AnyActorRef;
    const rs = rules.getSnapshot();
    const rc = rs.context as RulesContext;
    list.push({
      id: 'rules',
      machine: 'rules',
      state: rs.value,
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
        state: s.value,
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

  app.get('/debug/machines', async () => ({
    machines: definitions,
    mermaid: { entry: toMermaid(definitions.entry), rules: toMermaid(definitions.rules) },
    actors: actors(),
  }));

  app.get(
    '/transfers',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            required: ['entries'],
            properties: {
              entries: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['name', 'queued', 'running', 'waiting'],
                  properties: {
                    name: { type: 'string' },
                    queued: { type: 'integer' },
                    running: {
                      type: 'array',
                      items: {
                        type: 'object',
                        properties: {
                          id: { type: 'integer' },
                          kind: { type: 'string' },
                          filename: { type: 'string' },
                          source: { type: ['string', 'null'] },
                          bytes: { type: 'integer' },
                          size: { type: 'integer' },
                          rate: { type: 'integer' },
                          started: { type: 'number' },
                        },
                      },
                    },
                    waiting: {
                      type: 'array',
                      items: {
                        type: 'object',
                        properties: {
                          id: { type: 'integer' },
                          kind: { type: 'string' },
                          filename: { type: 'string' },
                          size: { type: 'integer' },
                          attempts: { type: 'integer' },
                          lastError: { type: ['string', 'null'] },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
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
  app.get<{ Querystring: { since?: number } }>(
    '/events',
    {
      schema: {
        querystring: { type: 'object', properties: { since: { type: 'integer', minimum: 0 } } },
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
