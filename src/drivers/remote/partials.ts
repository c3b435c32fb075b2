import { createHash } from 'node:crypto';

/**
 * Files this large are copied into a remote storage so that a copy cut short resumes: through
 * a partial file (SFTP) or a multipart upload (S3), named after the version of the file it copies.
 */
export const RESUMABLE_MIN = 32 << 20;

/** The id of one version's partial copy: a copy of another version never resumes from it. */
export function partialId(rel: string, size: number, mtime: number): string {
  return createHash('sha256').update(`${rel}\0${size}\0${mtime}`).digest('hex').slice(0, 24);
}
