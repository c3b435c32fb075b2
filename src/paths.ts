import path from 'node:path';
import { parse as parseUuid, v5 as uuidv5 } from 'uuid';

/** The namespace of file ids, so that fids match the original Onitu's. */
export const FID_NAMESPACE = 'bcd336f2-d023-4856-bc92-e79dd24b64d7';
/** Its bytes: uuid parses (and validates) a namespace given as a string twice per id. */
const FID_NAMESPACE_BYTES = parseUuid(FID_NAMESPACE);

export function fidOf(filename: string): string {
  return uuidv5(filename, FID_NAMESPACE_BYTES);
}

/** Names Ferry writes into a root for its own use; watchers and scans skip them. */
export const INTERNAL_PREFIX = '.ferry-';

/** The file of a local root whose lines are ignore patterns (see ignore-rules.ts). */
export const IGNORE_FILE = '.ferryignore';

/**
 * `.ferry` (the default data folder), every `.ferry-*` name (temporaries, the marker, the
 * versions folder) and `.ferryignore` (a root's ignore patterns) are Ferry's own: never
 * reported, listed or synced.
 */
export function isInternalName(name: string): boolean {
  return name === '.ferry' || name.startsWith(INTERNAL_PREFIX) || name === IGNORE_FILE;
}

/** Whether any segment of a relative path is one of Ferry's own names. */
export function hasInternalSegment(filename: string): boolean {
  // Most paths hold no `.ferry` at all: they are not split.
  return filename.includes('.ferry') && filename.split('/').some(isInternalName);
}

const MAX_PATH_BYTES = 4096;
const MAX_SEGMENT_BYTES = 255;

/**
 * Why `filename` is not a safe relative path inside an entry, or null when it is:
 * forward slashes only, no empty, `.` or `..` segment, no NUL or backslash, no leading slash.
 */
export function unsafeReason(filename: string): string | null {
  if (typeof filename !== 'string' || filename.length === 0) return 'empty path';
  if (filename.includes('\0')) return 'path contains NUL';
  if (filename.includes('\\')) return 'path contains a backslash';
  if (filename.startsWith('/')) return 'path is absolute';
  if (Buffer.byteLength(filename) > MAX_PATH_BYTES) return 'path is too long';
  for (const segment of filename.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `path has a "${segment}" segment`;
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) return 'path has a name that is too long';
  }
  return null;
}

/** The absolute path of `filename` under `root`; throws when it would leave the root. */
export function resolveInside(root: string, filename: string): string {
  const reason = unsafeReason(filename);
  if (reason) throw new UnsafePathError(filename, reason);
  const absolute = path.resolve(root, filename);
  if (!absolute.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) {
    throw new UnsafePathError(filename, 'path leaves the root');
  }
  return absolute;
}

export class UnsafePathError extends Error {
  constructor(readonly filename: string, readonly reason: string) {
    super(`refused path ${JSON.stringify(filename)}: ${reason}`);
    this.name = 'UnsafePathError';
  }
}
