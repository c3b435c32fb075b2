import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FileStat } from '../../../machines/reports.js';
import type { JobCommand } from '../protocol.js';
import { type DriverContext, StaleJob } from '../driver.js';
import { INTERNAL_PREFIX } from '../../paths.js';
import { sourceReader } from '../source-reader.js';
import { partialId, RESUMABLE_MIN } from '../remote/partials.js';
import { confined } from './confine.js';
import { sameStat, statOf } from './stat.js';
import type { WatchHooks } from './transfers.js';
import type { LocalVersions } from './versions.js';

/** How often a streamed copy reports its progress. */
const PROGRESS_MS = 250;

export interface FromReaderDeps {
  root: string;
  ctx: DriverContext;
  watch: WatchHooks;
  /** Moves the entry's copy of `rel` (at `absolute`) aside under a conflict name. */
  keepConflictCopy(rel: string, absolute: string): Promise<void>;
  /** Streamed copies in flight, aborted when the driver stops. */
  copies: Set<AbortController>;
  /** Where the content a copy replaces is kept (null: versions are off). */
  versions: LocalVersions | null;
  /** Makes the folders missing on the way to `rel`, as the job's own (see LocalTransfers). */
  makeParents(rel: string): void;
}

/**
 * A copy into a local root from an entry of another driver (SFTP, S3), through that entry's
 * reader: streamed into a hidden temporary beside the target (a partial file that a later
 * attempt resumes, for a large file), checked (size, source unchanged), then renamed into place.
 */
export async function uploadFromReader(job: Extract<JobCommand, { kind: 'upload' }>, d: FromReaderDeps): Promise<FileStat> {
  const reader = await sourceReader(job.source, d.ctx.log);
  const changed = (during = '') => new StaleJob(`source ${job.source.entry}:${job.path} changed${during}`);
  const before = await reader.stat(job.path);
  if (!before || !sameStat(before, job.sourceStat)) throw changed();
  const target = await confined(d.root, job.path);
  d.makeParents(job.path);
  const size = job.sourceStat.size;
  const resumable = size >= RESUMABLE_MIN;
  const tmp = path.join(
    path.dirname(target),
    resumable ? `${INTERNAL_PREFIX}part-${partialId(job.path, size, job.sourceStat.mtime)}` : `${INTERNAL_PREFIX}tmp-${randomBytes(8).toString('hex')}`,
  );
  let offset = 0;
  if (resumable) {
    const existing = await fsp.stat(tmp).catch(() => null);
    if (existing?.isFile() && existing.size <= size) offset = existing.size;
    else if (existing) await fsp.rm(tmp, { force: true });
  }
  let keep = resumable;
  let committed = false;
  const abort = new AbortController();
  d.copies.add(abort);
  let bytes = offset;
  const timer = setInterval(() => d.ctx.progress(job.id, bytes), PROGRESS_MS);
  try {
    // A resumed copy hashes the source from its first byte and the finished copy whole:
    // a partial file whose bytes differ from the source's is caught, not trusted.
    const sourceHash = offset > 0 ? createHash('sha256') : null;
    if (offset > 0) d.ctx.log('info', `resuming the copy of ${job.path} at ${offset} of ${size} bytes`, { path: job.path, offset });
    let skip = offset;
    await pipeline(
      await reader.open(job.path, sourceHash ? 0 : offset),
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          sourceHash?.update(chunk);
          if (sourceHash && skip > 0) {
            if (skip >= chunk.length) {
              skip -= chunk.length;
              return done();
            }
            chunk = chunk.subarray(skip);
            skip = 0;
          }
          bytes += chunk.length;
          done(null, chunk);
        },
      }),
      fs.createWriteStream(tmp, { flags: offset > 0 ? 'r+' : 'w', start: offset, highWaterMark: 1 << 20 }),
      { signal: abort.signal },
    );
    const written = await fsp.stat(tmp);
    if (written.size !== size) {
      keep = false;
      throw new Error(`copy of ${job.path} has ${written.size} bytes, expected ${size}; not committed`);
    }
    if (sourceHash) {
      const copy = createHash('sha256');
      for await (const chunk of fs.createReadStream(tmp, { highWaterMark: 1 << 20 })) copy.update(chunk as Buffer);
      if (copy.digest('hex') !== sourceHash.digest('hex')) {
        keep = false;
        d.ctx.log('error', `integrity check failed for ${job.path}: the written copy differs from the source; retrying`);
        throw new Error(`integrity check failed for ${job.path}; not committed`);
      }
    }
    const after = await reader.stat(job.path);
    if (!after || !sameStat(after, job.sourceStat)) {
      keep = false;
      throw changed(' during the copy');
    }
    const mtime = new Date(job.sourceStat.mtime);
    await fsp.utimes(tmp, mtime, mtime);
    const current = await fsp.lstat(target).catch(() => null);
    let replaced = current;
    if (current) {
      if (!current.isFile()) throw new Error(`${job.path} exists and is not a regular file`);
      const matches = job.expect !== null && sameStat(statOf(current), job.expect);
      if ((job.preserve || !matches) && !(await sameContent(target, tmp))) {
        await d.keepConflictCopy(job.path, target);
        replaced = null;
      }
    }
    const stat = statOf(await fsp.stat(tmp));
    // What the rename replaces is kept as a version (a hard link, made just before it), as for a copy from a local root.
    if (replaced) d.versions?.keepOverwritten(job.path, target, replaced.size);
    d.watch.expect(job.path, stat);
    await fsp.rename(tmp, target);
    committed = true;
    return stat;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') keep = false;
    throw err;
  } finally {
    clearInterval(timer);
    d.copies.delete(abort);
    d.ctx.progress(job.id, bytes);
    if (!keep && !committed) await fsp.rm(tmp, { force: true });
  }
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
  if (sa.size !== sb.size) return false;
  const digest = async (file: string) => {
    const hash = createHash('sha256');
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    return hash.digest('hex');
  };
  const [da, db] = await Promise.all([digest(a), digest(b)]);
  return da === db;
}
