import type { FastifyTypeProvider } from 'fastify';

/**
 * The TypeScript type of a JSON schema written `as const`: the subset of JSON Schema the API's
 * schemas use (type, properties, required, items, enum, const, oneOf, additionalProperties,
 * type lists such as `['string', 'null']`). What it does not know becomes `unknown`.
 * A local helper because neither json-schema-to-ts nor TypeBox is among the dependencies.
 */
export type FromSchema<S> = S extends { const: infer C }
  ? C
  : S extends { enum: readonly (infer E)[] }
    ? E
    : S extends { oneOf: readonly (infer O)[] }
      ? O extends unknown
        ? FromSchema<O>
        : never
      : S extends { type: readonly (infer T)[] }
        ? T extends unknown
          ? FromSchema<Omit<S, 'type'> & { type: T }>
          : never
        : S extends { type: 'string' }
          ? string
          : S extends { type: 'integer' | 'number' }
            ? number
            : S extends { type: 'boolean' }
              ? boolean
              : S extends { type: 'null' }
                ? null
                : S extends { type: 'array'; items: infer I }
                  ? FromSchema<I>[]
                  : S extends { type: 'object' }
                    ? ObjectFrom<S>
                    : unknown;

type RequiredKeys<S> = S extends { required: readonly (infer R)[] } ? R : never;

type Flatten<T> = { [K in keyof T]: T[K] } & {};

type Extra<S> = S extends { additionalProperties: true } ? Record<string, unknown> : unknown;

type ObjectFrom<S> = S extends { properties: infer P }
  ? Flatten<
      { -readonly [K in keyof P as K extends RequiredKeys<S> ? K : never]: FromSchema<P[K]> } & {
        -readonly [K in keyof P as K extends RequiredKeys<S> ? never : K]?: FromSchema<P[K]>;
      }
    > &
      Extra<S>
  : Record<string, unknown>;

/**
 * Fastify's type provider for these schemas: a route's params, querystring and body are typed
 * from its schemas, and its handler must return what its response schemas describe.
 */
export interface SchemaTypes extends FastifyTypeProvider {
  validator: FromSchema<this['schema']>;
  serializer: FromSchema<this['schema']>;
}

declare module 'fastify' {
  /** What a route's schema tells the OpenAPI description beyond what Fastify checks. */
  interface FastifySchema {
    operationId?: string;
    summary?: string;
    description?: string;
    tags?: readonly string[];
    /** The body as documented, when the handler checks it itself (to name the fault in words). */
    requestBody?: unknown;
    /** A 200 the handler writes itself, not as JSON (the event stream). */
    stream?: { mediaType: string; description: string };
  }
}
