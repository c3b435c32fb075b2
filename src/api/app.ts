import type { FastifyPluginAsync, RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import type { ActorSystem } from 'xstate';
import type { EntryConfig } from '../entry-config.js';
import type { Catalogue } from '../store/catalogue.js';
import type { EventLog } from '../observe/event-log.js';
import type { TransferBoard } from '../observe/transfer-board.js';
import { openApiRoutes } from './routes/openapi.js';
import { observeRoutes } from './routes/observe.js';
import { conflictsRoutes } from './routes/conflicts.js';
import { metricsRoutes } from './routes/metrics.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { installErrorHandling } from './errors.js';
import { installAccessControl } from './access.js';
import { filesRoutes } from './routes/files.js';
import { entriesRoutes } from './routes/entries.js';
import { rulesRoutes } from './routes/rules.js';

export const API_PREFIX = '/api/v1.0';

/**
 * The catalogue as the routes see it: read-only queries, nothing that writes. Every change goes
 * through an actor.
 */
export type CatalogueReader = Pick<
  Catalogue,
  'file' | 'findFiles' | 'countFiles' | 'countJobs' | 'countQueued' | 'failingJobs' | 'conflictFiles' | 'queuedList'
>;

/** What the routes may touch: the actor system (events and snapshots) and read-only queries. */
export interface ApiContext {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  system: ActorSystem<any>;
  entries: ReadonlyMap<string, EntryConfig>;
  store: CatalogueReader;
  events: EventLog;
  board: TransferBoard;
  logger?: Logger;
  /** When set, every request must carry `Authorization: Bearer TOKEN`. */
  token?: string;
  /** The one origin allowed to call the API from a browser (no CORS otherwise). */
  cors?: string;
}

/**
 * The whole application as one Fastify plugin (as fastify/demo's app.ts): error handling, access
 * control, the API under /api/v1.0, /metrics and the dashboard. It is registered on the server
 * that `server.ts` builds and listens with; tests may register it on any Fastify instance.
 */
export const ferryApp: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  installErrorHandling(app);
  installAccessControl(app, { token: ctx.token, cors: ctx.cors });
  // Hooks in callback style (no promise per request), and the request log only where it is
  // written: the busiest routes (status polls) pay for nothing they do not use.
  if (ctx.logger?.isLevelEnabled('debug')) {
    app.addHook('onResponse', (request, reply, done) => {
      request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
      done();
    });
  }
  app.addHook('onSend', (_request, reply, payload, done) => {
    const vary = reply.getHeader('Vary');
    reply.header('Vary', typeof vary === 'string' && vary !== 'Accept' ? `Accept, ${vary}` : 'Accept');
    done(null, payload);
  });
  await app.register(
    async (api) => {
      // Every route of the API, as registered with its schemas, for the OpenAPI description.
      const routes: RouteOptions[] = [];
      api.addHook('onRoute', (route) => void routes.push(route));
      await api.register(openApiRoutes, { routes, token: Boolean(ctx.token) });
      await api.register(filesRoutes, ctx);
      await api.register(entriesRoutes, ctx);
      await api.register(rulesRoutes, ctx);
      await api.register(observeRoutes, ctx);
      await api.register(conflictsRoutes, ctx);
    },
    { prefix: API_PREFIX },
  );
  await app.register(metricsRoutes, ctx);
  await app.register(dashboardRoutes, ctx);
};
// Not encapsulated (what fastify-plugin does): the error handler, the not-found handler and the
// hooks above apply to the server it is registered on.
(ferryApp as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
