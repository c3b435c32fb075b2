import type { FastifyPluginAsync, RawServerDefault } from 'fastify';
import { waitFor, type AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import { ApiError } from '../errors.js';
import type { SchemaTypes } from '../json-schema.js';
import {
  MAX_LIMIT,
  errorSchema,
  fidParams,
  restoredSchema,
  trashQuery,
  trashSchema,
  versionParams,
  versionsSchema,
  type Version,
} from '../schemas.js';
import type { EntryContext } from '../../../machines/entry.js';
import type { VersionRow } from '../../store/versions-table.js';

/** How long a restore may take before the API answers 503 (a rename: it never should). */
const RESTORE_TIMEOUT_MS = 30_000;

const now = () => Date.now() / 1000;

const versionJson = (v: VersionRow): Version => ({ id: v.id, entry: v.entry, time: v.time / 1000, size: v.size, reason: v.reason });

/** Errors every PUT can meet before its handler runs: a body that is not JSON, too big, or of another type. */
const bodyErrors = { 400: errorSchema, 413: errorSchema, 415: errorSchema } as const;

/**
 * The versions entries keep of what syncs overwrote or deleted, read from the catalogue (the
 * workers report them), and their restore: an event to the entry actor that keeps the version,
 * answered once its worker has put it back (the file then syncs as any change).
 */
export const versionsRoutes: FastifyPluginAsync<ApiContext, RawServerDefault, SchemaTypes> = async (app, ctx) => {
  /** A 404 that says whether the file or only the version is unknown. */
  const notFound = (fid: string, id?: number) => {
    const known = ctx.store.file(fid) !== undefined || ctx.store.versions.ofFile(fid).length > 0;
    return new ApiError(404, known && id !== undefined ? `version ${id} of file ${fid} not found` : `file ${fid} not found`);
  };

  app.get(
    '/files/:fid/versions',
    {
      schema: {
        operationId: 'listFileVersions',
        tags: ['files'],
        summary: "List the versions the entries keep of a file's content that a sync overwrote or deleted, newest first.",
        description: 'A file deleted everywhere keeps its fid (the UUID v5 of its filename): its versions are listed the same way.',
        params: fidParams,
        response: { 200: versionsSchema, 404: errorSchema },
      },
    },
    async (request) => {
      const { fid } = request.params;
      const versions = ctx.store.versions.ofFile(fid);
      if (versions.length === 0 && ctx.store.file(fid) === undefined) throw notFound(fid);
      return { versions: versions.map(versionJson) };
    },
  );

  app.put(
    '/files/:fid/versions/:id/restore',
    {
      schema: {
        operationId: 'restoreFileVersion',
        tags: ['files'],
        summary: 'Put a version back in place in the entry that keeps it, as a new change that syncs to every owner.',
        description:
          "What the file holds there is kept as a version first. Answers once the entry's worker has put it back; " +
          '409 when that entry is not running.',
        params: versionParams,
        response: { 200: restoredSchema, ...bodyErrors, 404: errorSchema, 409: errorSchema, 503: errorSchema },
      },
    },
    async (request) => {
      const { fid, id } = request.params;
      const version = ctx.store.versions.byId(id);
      if (!version || version.fid !== fid) throw notFound(fid, id);
      const { entry } = version;
      const actor = ctx.system.get(`entry:${entry}`) as AnyActorRef | undefined;
      const event = { type: 'entry.restore', key: version.key } as const;
      if (!actor?.getSnapshot().can(event)) throw new ApiError(409, `entry ${entry} is not running`);
      actor.send(event);
      const asked = (actor.getSnapshot().context as EntryContext).restoresAsked;
      const done = (s: { context: unknown }) => (s.context as EntryContext).restored.find((r) => r.id === asked);
      const settled = await waitFor(actor, (s) => done(s) !== undefined || !s.matches({ active: 'running' }), {
        timeout: RESTORE_TIMEOUT_MS,
      }).catch(() => {
        throw new ApiError(503, `the restore of version ${id} in ${entry} did not finish within ${RESTORE_TIMEOUT_MS / 1000} s`);
      });
      const result = done(settled);
      if (!result) throw new ApiError(409, `entry ${entry} is not running`);
      if (result.missing) throw new ApiError(404, `version ${id} of file ${fid} not found (${entry} no longer keeps it)`);
      if (result.error !== null) throw new ApiError(409, `cannot restore version ${id} of ${version.filename} in ${entry}: ${result.error}`);
      return { status: 'ok' as const, fid, filename: version.filename, entry, id, time: now() };
    },
  );

  app.get(
    '/trash',
    {
      schema: {
        operationId: 'listTrash',
        tags: ['files'],
        summary: 'List the files deleted everywhere whose content some entry keeps as versions, by filename.',
        description: '`offset` (default 0) and `limit` (default 20, capped at 1000) page through them, as for /files.',
        querystring: trashQuery,
        response: { 200: trashSchema, 400: errorSchema },
      },
    },
    async (request) => {
      const { offset, limit } = request.query;
      const page = ctx.store.versions.trash(offset ?? 0, Math.min(limit ?? 20, MAX_LIMIT));
      return { files: page.map((f) => ({ fid: f.fid, filename: f.filename, deleted: f.deleted / 1000, versions: f.versions })) };
    },
  );
};
