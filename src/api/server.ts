import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { ferryApp, type ApiContext } from './app.js';

/** Request bodies are small JSON documents (rules); anything bigger is refused. */
export const BODY_LIMIT = 1 << 20;

/**
 * Ajv's options beside Fastify's own. The routes' request schemas are ours and fixed: ajv does
 * not check them against the JSON Schema meta-schema at each start (compiling the meta-schema
 * for that took 15-20 ms of the API's load warm, 54 ms in a cold start's profile). A test
 * compiles them with the check (api-openapi.test.ts).
 */
export const AJV_OPTIONS = { validateSchema: false } as const;

/**
 * The server the daemon listens with (as fastify/demo's server.ts): Fastify's own options, and
 * the application plugin registered on it. Listening is left to the caller.
 */
export async function buildServer(
  ctx: ApiContext,
  /** The daemon's own HTTP server, already listening: Fastify answers its requests. */
  serverFactory?: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server,
): Promise<FastifyInstance> {
  const server = Fastify({
    ...(serverFactory ? { serverFactory } : {}),
    loggerInstance: ctx.logger?.child({ component: 'api' }) as FastifyBaseLogger | undefined,
    // Requests are logged at debug level by the app's hook, not at info by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    routerOptions: { ignoreTrailingSlash: true },
    ajv: { customOptions: AJV_OPTIONS },
  });
  await server.register(ferryApp, ctx);
  return server;
}
