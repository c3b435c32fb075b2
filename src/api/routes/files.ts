import type { FastifyPluginAsync } from 'fastify';
import type { ApiContext } from '../app.js';
import { ApiError, errorSchema } from '../errors.js';
import { fileSchema } from '../schemas.js';
import type { FileRecord } from '../../store/catalogue.js';

/** The most files one page returns; a larger `limit` is capped to it. */
export const MAX_LIMIT = 1000;

const fileJson = (f: FileRecord) => ({
  fid: f.fid,
  filename: f.filename,
  size: f.size,
  owners: f.owners,
  uptodate: f.uptodate,
});

export const filesRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  app.get<{ Querystring: { offset: number; limit: number } }>(
    '/files',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            offset: { type: 'integer', minimum: 0, default: 0 },
            limit: { type: 'integer', minimum: 0, default: 20 },
          },
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', required: ['files'], properties: { files: { type: 'array', items: fileSchema } } },
          400: errorSchema,
        },
      },
    },
    async (request) => {
      const { offset, limit } = request.query;
      return { files: ctx.store.listFiles(offset, Math.min(limit, MAX_LIMIT)).map(fileJson) };
    },
  );

  app.get<{ Params: { fid: string } }>(
    '/files/:fid/metadata',
    {
      schema: {
        params: { type: 'object', required: ['fid'], properties: { fid: { type: 'string' } } },
        response: { 200: fileSchema, 404: errorSchema },
      },
    },
    async (request) => {
      const file = ctx.store.file(request.params.fid);
      if (!file || file.deleted) throw new ApiError(404, `file ${request.params.fid} not found`);
      return fileJson(file);
    },
  );
};
