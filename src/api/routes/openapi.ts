import type { FastifyPluginAsync, RouteOptions } from 'fastify';
import { rulesBodySchema } from '../schemas.js';

type Schema = Record<string, unknown>;

/** Fastify's `/a/:name/b` as OpenAPI's `/a/{name}/b`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const REASONS: Record<string, string> = {
  '200': 'OK',
  '400': 'Bad request: the reason names the fault',
  '404': 'Not found',
  '409': 'Conflict with the current state',
  '413': 'Request body too large',
  '500': 'Internal error',
  '503': 'Not ready in time',
};

/** A JSON schema as OpenAPI 3.0 takes it (no `const`: an `enum` of one). */
function toOpenApi(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toOpenApi);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'const') out.enum = [v];
    else if (k === 'type' && Array.isArray(v)) {
      // ['string', 'null'] is OpenAPI 3.0's nullable string.
      const types = v.filter((t) => t !== 'null');
      out.type = types.length === 1 ? types[0] : types;
      if (types.length < v.length) out.nullable = true;
    } else out[k] = toOpenApi(v);
  }
  return out;
}

/**
 * `GET /openapi.json`: an OpenAPI 3 description built from the routes' own schemas as they
 * are registered, so it cannot drift from what the routes check and answer.
 */
export const openApiRoutes: FastifyPluginAsync<{ routes: RouteOptions[] }> = async (app, { routes }) => {
  let document: Schema | null = null;
  const build = (): Schema => {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const route of routes) {
      if (route.method === 'HEAD') continue;
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const schema = (route.schema ?? {}) as Schema;
      for (const method of methods) {
        const operation: Schema = {
          operationId: `${method.toLowerCase()}${openApiPath(route.url).replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`,
        };
        const summary = SUMMARIES[`${method} ${route.url}`];
        if (summary) operation.summary = summary;
        const parameters: Schema[] = [];
        for (const [where, key] of [['path', 'params'], ['query', 'querystring']] as const) {
          const s = schema[key] as Schema | undefined;
          const props = (s?.properties ?? {}) as Record<string, Schema>;
          const required = (s?.required ?? []) as string[];
          for (const [name, p] of Object.entries(props)) {
            parameters.push({ name, in: where, required: where === 'path' || required.includes(name), schema: toOpenApi(p) });
          }
        }
        if (parameters.length) operation.parameters = parameters;
        if (method === 'PUT' && route.url.endsWith('/rules')) {
          operation.requestBody = { required: true, content: { 'application/json': { schema: RULES_BODY } } };
        }
        const responses: Schema = {};
        for (const [code, s] of Object.entries((schema.response ?? {}) as Record<string, unknown>)) {
          responses[code] = { description: REASONS[code] ?? 'Answer', content: { 'application/json': { schema: toOpenApi(s) } } };
        }
        if (!responses['200']) {
          responses['200'] = route.url.endsWith('/events')
            ? { description: 'A stream of Server-Sent Events', content: { 'text/event-stream': { schema: { type: 'string' } } } }
            : { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } };
        }
        operation.responses = responses;
        (paths[openApiPath(route.url)] ??= {})[method.toLowerCase()] = operation;
      }
    }
    return {
      openapi: '3.0.3',
      info: {
        title: 'Ferry API',
        version: '1.0',
        description: 'The REST control plane of the Ferry file-sync daemon (API 1.0). Errors are {"reason", "status": "error"}.',
      },
      servers: [{ url: '/' }],
      paths,
    };
  };

  app.get('/openapi.json', async () => (document ??= build()));
};

const SUMMARIES: Record<string, string> = {
  'GET /api/v1.0/openapi.json': 'This description of the API, as OpenAPI 3.',
  'GET /api/v1.0/files': 'List the files, ordered by filename (offset default 0, limit default 20, capped at 1000).',
  'GET /api/v1.0/files/:fid/metadata': 'Return the metadata of a file.',
  'GET /api/v1.0/entries': 'List all the entries.',
  'GET /api/v1.0/entries/:name': 'Return the description of a given entry.',
  'PUT /api/v1.0/entries/:name/rescan':
    "Compare the entry's whole storage with the store now, by stat, and answer once what was found is recorded and queued " +
    '(every entry also does so every rescan_interval seconds: a watcher misses the events the kernel drops).',
  'GET /api/v1.0/entries/:name/stats': "Return the stats of a given entry's worker process.",
  'GET /api/v1.0/entries/:name/status': 'Return the status of a given entry: active, stopped or restarting.',
  'PUT /api/v1.0/entries/:name/start': 'Start a given entry.',
  'PUT /api/v1.0/entries/:name/stop': 'Stop a given entry.',
  'PUT /api/v1.0/entries/:name/restart': 'Stop and start a given entry.',
  'GET /api/v1.0/rules': 'Get the staged rules.',
  'PUT /api/v1.0/rules': 'Stage new rules (checked; a 400 names the fault).',
  'PUT /api/v1.0/rules/reload': 'Apply the staged rules (if they changed since the last time).',
  'GET /api/v1.0/debug/machines': "Each machine's definition (toJSON and mermaid) and every running actor's state and context summary.",
  'GET /api/v1.0/transfers': 'Queued and running jobs per entry, with bytes done, size and rate.',
  'GET /api/v1.0/events': 'Server-Sent Events: transitions, file events and transfer progress; ?since=ID resumes after an id.',
  'GET /api/v1.0/conflicts': 'The conflict copies kept, with the file, entry and time each one records.',
  'GET /api/v1.0/rules/diff': 'What a reload would change: for each file whose owners would change, the entries it gains and loses.',
};

/** The body of PUT /rules (checked in the handler, which names the fault in its 400). */
const RULES_BODY = toOpenApi(rulesBodySchema);
