import path from 'node:path';

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The name a conflicting copy is kept under, as Syncthing names it:
 * `dir/name.sync-conflict-YYYYMMDD-HHMMSS-ENTRY.ext` (UTC). `n` > 0 adds a counter for
 * the rare second conflict within the same second.
 */
export function conflictName(filename: string, entry: string, when: Date, n = 0): string {
  const dir = path.posix.dirname(filename);
  const base = path.posix.basename(filename);
  const ext = path.posix.extname(base);
  const stem = ext ? base.slice(0, -ext.length) : base;
  const stamp =
    `${when.getUTCFullYear()}${pad(when.getUTCMonth() + 1)}${pad(when.getUTCDate())}-` +
    `${pad(when.getUTCHours())}${pad(when.getUTCMinutes())}${pad(when.getUTCSeconds())}`;
  const name = `${stem}.sync-conflict-${stamp}-${entry}${n > 0 ? `-${n}` : ''}${ext}`;
  return dir === '.' ? name : `${dir}/${name}`;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * What a conflict copy's name says: the original filename, the entry whose copy it was, and
 * when it was kept (epoch seconds). Null when the name is not a conflict copy's. Entry names
 * may hold dots, so the known names, when given, settle where the name ends.
 */
export function parseConflictName(
  filename: string,
  entries?: Iterable<string>,
): { original: string; entry: string; time: number } | null {
  const names = entries ? [...entries].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|') : '[A-Za-z0-9_.-]+?';
  if (!names) return null;
  const pattern = new RegExp(`^(.*?)\\.sync-conflict-(\\d{4})(\\d{2})(\\d{2})-(\\d{2})(\\d{2})(\\d{2})-(${names})(?:-(\\d+))?(\\.[^./]*)?$`);
  const dir = path.posix.dirname(filename);
  const m = pattern.exec(path.posix.basename(filename));
  if (!m) return null;
  const [, stem, y, mo, d, h, mi, s, entry, , ext] = m;
  const base = `${stem}${ext ?? ''}`;
  return {
    original: dir === '.' ? base : `${dir}/${base}`,
    entry,
    time: Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) / 1000,
  };
}
