import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifySchema, RouteOptions } from 'fastify';
import { NAMED_SCHEMAS, errorSchema } from '../schemas.js';

type Schema = Record<string, unknown>;

/** The package's license, from the package.json above this module (built into dist/ or run from src/). */
function packageLicense(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { license?: string }).license ?? 'UNLICENSED';
  }
  return 'UNLICENSED';
}
const license = packageLicense();

/** Fastify's `/a/:name/b` as OpenAPI's `/a/{name}/b`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const REASONS: Record<string, string> = {
  '200': 'OK',
  '400': 'Bad request: a parameter, the query or the body is not what the route takes; the reason names the fault',
  '401': 'Missing or wrong bearer token (the daemon runs with --token)',
  '404': 'Not found: the entry or file named does not exist',
  '409': 'Conflict with the current state (the reason says which)',
  '413': 'Request body larger than 1 MiB',
  '415': 'Request body of a type other than JSON',
  '500': 'Internal error',
  '503': 'Not done in time (what was asked goes on)',
};

const TAGS = [
  { name: 'files', description: 'The files the catalogue knows, their owners and the entries up to date.' },
  { name: 'entries', description: 'The configured entries: their description, state, worker process and control.' },
  { name: 'rules', description: 'The rules that decide owners: staged, compared, reloaded.' },
  { name: 'observe', description: 'What the daemon is doing: state machines, transfers, the event stream.' },
  { name: 'meta', description: 'This description.' },
];

const NAMED = new Map<string, unknown>(NAMED_SCHEMAS.map((s) => [s.title, s]));

const isObject = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A JSON schema of the routes as OpenAPI 3.0 takes it: a named schema (by its `title`) becomes a
 * `$ref` to components/schemas, `const` an `enum` of one, `['string', 'null']` a nullable string.
 */
function toOpenApi(schema: unknown, isComponent = false): unknown {
  if (!isObject(schema)) return schema;
  if (!isComponent && typeof schema.title === 'string' && NAMED.get(schema.title) === schema) {
    return { $ref: `#/components/schemas/${schema.title}` };
  }
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'const') out.enum = [v];
    else if (k === 'type' && Array.isArray(v)) {
      const types = v.filter((t) => t !== 'null');
      out.type = types.length === 1 ? types[0] : types;
      if (types.length < v.length) out.nullable = true;
    } else if (k === 'properties' && isObject(v)) {
      out.properties = Object.fromEntries(Object.entries(v).map(([name, p]) => [name, toOpenApi(p)]));
    } else if ((k === 'oneOf' || k === 'anyOf' || k === 'allOf') && Array.isArray(v)) {
      out[k] = v.map((s) => toOpenApi(s));
    } else if (k === 'items' || (k === 'additionalProperties' && isObject(v))) {
      out[k] = toOpenApi(v);
    } else out[k] = v;
  }
  return out;
}

const json = (schema: unknown) => ({ 'application/json': { schema: toOpenApi(schema) } });

/** The OpenAPI operation of one route and method, from the route's own schema. */
function operation(route: RouteOptions, token: boolean): Schema {
  const schema = (route.schema ?? {}) as FastifySchema & Schema;
  const op: Schema = {
    operationId: schema.operationId,
    summary: schema.summary,
    ...(schema.description ? { description: schema.description } : {}),
    ...(schema.tags ? { tags: schema.tags } : {}),
  };
  const parameters: Schema[] = [];
  for (const [where, key] of [['path', 'params'], ['query', 'querystring']] as const) {
    const s = schema[key] as Schema | undefined;
    const props = (s?.properties ?? {}) as Record<string, Schema>;
    const required = (s?.required ?? []) as string[];
    for (const [name, { description, ...p }] of Object.entries(props)) {
      parameters.push({
        name,
        in: where,
        required: where === 'path' || required.includes(name),
        ...(description ? { description } : {}),
        schema: toOpenApi(p),
      });
    }
  }
  if (parameters.length) op.parameters = parameters;
  if (schema.requestBody) op.requestBody = { required: true, content: json(schema.requestBody) };
  const responses: Schema = {};
  if (schema.stream) {
    const { mediaType, description } = schema.stream;
    responses['200'] = { description, content: { [mediaType]: { schema: { type: 'string' } } } };
  }
  for (const [code, s] of Object.entries((schema.response ?? {}) as Record<string, unknown>)) {
    responses[code] = { description: REASONS[code] ?? 'Answer', content: json(s) };
  }
  if (token) responses['401'] = { description: REASONS['401'], content: json(errorSchema) };
  op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
  return op;
}

/**
 * `GET /openapi.json`: an OpenAPI 3 description built from the routes' own schemas as they
 * are registered, so it cannot drift from what the routes check and answer. The bearer scheme
 * is always described; it is required (and 401 listed) when the daemon runs with a token.
 */
export const openApiRoutes: FastifyPluginAsync<{ routes: RouteOptions[]; token: boolean }> = async (app, { routes, token }) => {
  let document: Schema | null = null;
  const build = (): Schema => {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const route of routes) {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      for (const method of methods) {
        if (method === 'HEAD') continue;
        (paths[openApiPath(route.url)] ??= {})[method.toLowerCase()] = operation(route, token);
      }
    }
    return {
      openapi: '3.0.3',
      info: {
        title: 'Ferry API',
        version: '1.0',
        description:
          'The REST control plane of the Ferry file-sync daemon (API 1.0, port 3862). Every error is ' +
          '{"reason": "…", "status": "error"}, the reason in words.',
        license: { name: license, url: `https://spdx.org/licenses/${license}.html` },
      },
      servers: [{ url: '/' }],
      tags: TAGS,
      // An empty list: no token asked for. With --token, every route asks for the bearer.
      security: token ? [{ bearer: [] }] : [],
      paths,
      components: {
        schemas: Object.fromEntries(NAMED_SCHEMAS.map((s) => [s.title, toOpenApi(s, true)])),
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description:
              'The token the daemon was started with (--token or FERRY_TOKEN), as `Authorization: Bearer TOKEN`; ' +
              'required only then. The event stream also takes it as ?access_token=.',
          },
        },
      },
    };
  };

  app.get(
    '/openapi.json',
    {
      schema: {
        operationId: 'getOpenApi',
        tags: ['meta'],
        summary: 'This description of the API, as OpenAPI 3.0.',
        response: { 200: { type: 'object', additionalProperties: true, description: 'An OpenAPI 3.0 document' } },
      },
    },
    async () => (document ??= build()),
  );
};
