/**
 * Where a version lives in an entry's storage, the same for every driver: under the root's
 * hidden `.ferry-versions/` folder (a `.ferry-` name: never watched, listed or synced), a folder
 * named after the file holds its versions, each named after when it was kept and why:
 * `.ferry-versions/docs/a.txt/20261129-083001-123.overwritten`. A person can find them by name;
 * every segment is as long as the file's own (no name grows past 255 bytes).
 */
import { INTERNAL_PREFIX, unsafeReason } from '../paths.js';
import { VERSION_REASONS, type VersionReason } from './policy.js';

/** The folder of an entry's root that holds its versions. */
export const VERSIONS_FOLDER = `${INTERNAL_PREFIX}versions`;

const two = (n: number) => String(n).padStart(2, '0');

/** `20261129-083001-123.overwritten` (UTC), or `…-123-2.overwritten` for the third of one millisecond. */
export function versionName(time: number, reason: VersionReason, n = 0): string {
  const d = new Date(time);
  const stamp =
    `${d.getUTCFullYear()}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}-` +
    `${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}-${String(d.getUTCMilliseconds()).padStart(3, '0')}`;
  return `${stamp}${n > 0 ? `-${n}` : ''}.${reason}`;
}

/** The key of a version of `filename`: its path under the versions folder. */
export function versionKey(filename: string, time: number, reason: VersionReason, n = 0): string {
  return `${filename}/${versionName(time, reason, n)}`;
}

const NAME = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-(\d{3})(?:-(\d+))?\.([a-z]+)$/;

/** What a key says: the file, when its version was kept, why; null for a name that is not a version's. */
export function parseVersionKey(key: string): { filename: string; time: number; reason: VersionReason } | null {
  const slash = key.lastIndexOf('/');
  if (slash <= 0) return null;
  const filename = key.slice(0, slash);
  const m = NAME.exec(key.slice(slash + 1));
  if (!m || !(VERSION_REASONS as readonly string[]).includes(m[9]!) || unsafeReason(filename) !== null) return null;
  const [y, mo, d, h, mi, s, ms] = m.slice(1, 8).map(Number) as [number, number, number, number, number, number, number];
  const time = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  if (!Number.isFinite(time)) return null;
  return { filename, time, reason: m[9] as VersionReason };
}
