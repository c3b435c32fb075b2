import { createHash } from 'node:crypto';
import { S_IFDIR, S_IFMT } from '../machines/reports.js';

/**
 * The digest of a folder's listing, as an entry's worker finds it on disk and as the daemon
 * finds it in the entry's replicas: one line per child (a subfolder's own record, not what it
 * holds), the lines sorted, hashed. Equal digests, equal listings (each name is written with its
 * length, so that no name can pass for another's stat). A start-up scan leaves out the files of
 * every folder whose digest is the store's: they are held as the store says.
 *
 * What a child's line holds is what the scan compares: size, mtime, ctime, inode and mode (a
 * folder's size and mtime are 0, see folderRecOf). What either side does not know is empty, so
 * that a replica without a ctime or a mode never equals a listing.
 */
export function childLine(
  name: string,
  size: number,
  mtime: number,
  ctime: number | null | undefined,
  ino: number | string | null,
  mode: number | null | undefined,
): string {
  const head = `${name.length}:${name}`;
  if (mode != null && (mode & S_IFMT) === S_IFDIR) return `${head}/${ctime ?? ''}\0${ino ?? ''}\0${mode}`;
  return `${head}\0${size}\0${mtime}\0${ctime ?? ''}\0${ino ?? ''}\0${mode ?? ''}`;
}

/** The digest of a folder's children's lines (sorted here: the caller's order does not matter). */
export function listingDigest(lines: string[]): string {
  lines.sort();
  return createHash('sha1').update(lines.join('\n')).digest('base64');
}
