import type { FastifyError, FastifyInstance } from 'fastify';

/** An error the API answers with `{"reason": …, "status": "error"}` and its status code. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    reason: string,
  ) {
    super(reason);
    this.name = 'ApiError';
  }
}

export const errorBody = (reason: string) => ({ reason, status: 'error' as const });

export { errorSchema } from './schemas.js';

/** The one place errors become responses: the spec's body, and never a stack trace. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof ApiError) return reply.code(err.statusCode).send(errorBody(err.message));
    if (err.validation) return reply.code(400).send(errorBody(err.message));
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(errorBody(err.message));
    }
    request.log.error({ err }, 'request failed');
    return reply.code(500).send(errorBody('internal error'));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(`no route ${request.method} ${request.url.split('?')[0]}`));
  });
}
