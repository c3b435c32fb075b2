import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import type { ActorSystem } from 'xstate';
import type { EntryConfig } from '../sync/engine.js';
import type { Catalogue } from '../store/catalogue.js';
import type { Rule } from '../../machines/rules.js';
import type { RulesDiff } from '../sync/engine.js';
import { openApiRoutes } from './routes/openapi.js';
import { observeRoutes } from './routes/observe.js';
import { conflictsRoutes } from './routes/conflicts.js';
import { metricsRoutes } from './routes/metrics.js';
import { dashboardRoutes } from './routes/dashboard.js';
import type { EventLog } from '../observe/event-log.js';
import type { TransferBoard } from '../observe/transfer-board.js';
import { installErrorHandling } from './errors.js';
import { installAccessControl } from './access.js';
import { filesRoutes } from './routes/files.js';
import { entriesRoutes } from './routes/entries.js';
import { rulesRoutes } from './routes/rules.js';

export const API_PREFIX = '/api/v1.0';

/** What the routes may touch: the actor system (events and snapshots) and read-only queries. */
export interface ApiContext {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  system: ActorSystem<any>;
  entries: ReadonlyMap<string, EntryConfig>;
  store: Catalogue;
  /** What applying these rules would change (a read-only query). */
  diffRules: (rules: Rule[]) => RulesDiff;
  events: EventLog;
  board: TransferBoard;
  logger?: Logger;
  /** When set, every request must carry `Authorization: Bearer TOKEN`. */
  token?: string;
  /** The one origin allowed to call the API from a browser (no CORS otherwise). */
  cors?: string;
}

/** Request bodies are small JSON documents (rules); anything bigger is refused. */
const BODY_LIMIT = 1 << 20;

export async function buildApp(ctx: ApiContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.logger?.child({ component: 'api' }) as FastifyBaseLogger | undefined,
    // Requests are logged at debug level by the hook below, not at info by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    // Route params and querystrings are parsed strictly: "?limit=1&limit=2" is not a number.
    routerOptions: { ignoreTrailingSlash: true },
  });
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
      await api.register(openApiRoutes, { routes });
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
  return app;
}
