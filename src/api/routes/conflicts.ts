import type { FastifyPluginAsync } from 'fastify';
import type { ApiContext } from '../app.js';
import { parseConflictName } from '../../drivers/conflict-name.js';

/** `GET /conflicts`: the conflict copies Ferry kept, each with the file it was a version of. */
export const conflictsRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  app.get(
    '/conflicts',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            required: ['conflicts'],
            properties: {
              conflicts: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['fid', 'filename', 'original', 'entry', 'time', 'size', 'owners', 'uptodate'],
                  properties: {
                    fid: { type: 'string' },
                    filename: { type: 'string' },
                    original: { type: 'string' },
                    entry: { type: 'string' },
                    time: { type: 'number' },
                    size: { type: 'integer' },
                    owners: { type: 'array', items: { type: 'string' } },
                    uptodate: { type: 'array', items: { type: 'string' } },
                  },
                },
              },
            },
          },
        },
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
