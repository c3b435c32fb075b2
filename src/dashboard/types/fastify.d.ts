/**
 * Stands for 'fastify' in the browser's type-check only (tsconfig `paths`). The page takes the
 * API's types from src/api/schemas.ts, whose FromSchema lives in src/api/json-schema.ts beside
 * Fastify's type provider; the real 'fastify' types would bring Node's (through pino) into code
 * that runs in a browser. json-schema.ts needs these two interfaces, nothing else.
 */
export interface FastifyTypeProvider {
  readonly schema: unknown;
  readonly validator: unknown;
  readonly serializer: unknown;
}

// Augmented by src/api/json-schema.ts.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface FastifySchema {}
