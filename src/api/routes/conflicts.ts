import type { FastifyPluginAsync, RawServerDefault } from 'fastify';
import type { ApiContext } from '../app.js';
import type { SchemaTypes } from '../json-schema.js';
import { conflictsSchema } from '../schemas.js';
import { parseConflictName } from '../../conflict-name.js';

/** `GET /conflicts`: the conflict copies Ferry kept, each with the file it was a version of. */
export const conflictsRoutes: FastifyPluginAsync<ApiContext, RawServerDefault, SchemaTypes> = async (app, ctx) => {
  app.get(
    '/conflicts',
    {
      schema: {
        operationId: 'listConflicts',
        tags: ['files'],
        summary: 'The conflict copies kept, with the file, entry and time each one records.',
        response: { 200: conflictsSchema },
      },
    },
    async () => ({
      conflicts: ctx.store.conflictFiles().flatMap((f) => {
        const parsed = parseConflictName(f.filename, ctx.entries.keys());
        if (!parsed) return [];
        return [{ fid: f.fid, filename: f.filename, ...parsed, size: f.size, owners: f.owners, uptodate: f.uptodate }];
      }),
    }),
  );
};
