import type { FastifyPluginAsync, RawServerDefault } from 'fastify';
import type { ApiContext } from '../app.js';
import { ApiError } from '../errors.js';
import type { SchemaTypes } from '../json-schema.js';
import { MAX_LIMIT, errorSchema, fidParams, fileSchema, filesQuery, filesSchema, type File, type ListedFile } from '../schemas.js';
import type { FileRecord } from '../../store/catalogue.js';

export { MAX_LIMIT };

const fileJson = (f: FileRecord): File => ({
  fid: f.fid,
  filename: f.filename,
  size: f.size,
  owners: f.owners,
  uptodate: f.uptodate,
});

export const filesRoutes: FastifyPluginAsync<ApiContext, RawServerDefault, SchemaTypes> = async (app, ctx) => {
  app.get(
    '/files',
    {
      schema: {
        operationId: 'listFiles',
        tags: ['files'],
        summary: 'List the files, ordered by filename: a page of those that match every filter given.',
        description:
          '`offset` (default 0) and `limit` (default 20, capped at 1000) page through the files that match ' +
          '`pending`, `failing` and `q`, all optional and combinable.',
        querystring: filesQuery,
        response: { 200: filesSchema, 400: errorSchema, 404: errorSchema },
      },
    },
    async (request) => {
      const { offset, limit, pending, failing, q } = request.query;
      if (pending !== undefined && !ctx.entries.has(pending)) throw new ApiError(404, `entry ${pending} not found`);
      const page = ctx.store.findFiles({ pending, failing, q }, offset ?? 0, Math.min(limit ?? 20, MAX_LIMIT));
      return {
        files: page.map((f): ListedFile => (f.reason === undefined ? fileJson(f) : { ...fileJson(f), reason: f.reason })),
      };
    },
  );

  app.get(
    '/files/:fid/metadata',
    {
      schema: {
        operationId: 'getFileMetadata',
        tags: ['files'],
        summary: 'Return the metadata of a file.',
        params: fidParams,
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
