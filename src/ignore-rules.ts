/**
 * Ignore patterns, in gitignore's syntax (through the `ignore` package), the same for every
 * driver and for the daemon: the setup's lists (top-level, for every entry, then the entry's
 * own) and, in a local root, the `.ferryignore` file. A path an entry ignores is never reported,
 * written or deleted there, and the sync engine treats that entry as neither holding nor owning
 * it.
 */
import ignore, { type Ignore } from 'ignore';

export { IGNORE_FILE } from './paths.js';

export type PatternsCheck = { ok: true; value: string[] } | { ok: false; reason: string };

/**
 * A setup's `ignore` value: a list of patterns (strings without NUL or a line break), or why not;
 * the reason begins with the index of a faulty item (`[2]: …`) or says the whole is wrong.
 */
export function checkPatterns(value: unknown): PatternsCheck {
  if (!Array.isArray(value)) return { ok: false, reason: 'must be a list of patterns (strings, in gitignore syntax)' };
  const patterns: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const p: unknown = value[i];
    if (typeof p !== 'string') return { ok: false, reason: `[${i}]: must be a string (a pattern in gitignore syntax)` };
    if (/[\0\r\n]/.test(p)) return { ok: false, reason: `[${i}]: must be one line, without NUL` };
    if (p.trim() === '') return { ok: false, reason: `[${i}]: must not be empty` };
    try {
      ignore().add(p).ignores('x');
    } catch (err) {
      return { ok: false, reason: `[${i}]: not a valid pattern: ${(err as Error).message}` };
    }
    patterns.push(p);
  }
  return { ok: true, value: patterns };
}

/** The patterns of an ignore file's text: its lines, blank lines and comments left out. */
export function patternsOfFile(text: string): string[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));
}

/** Whether two lists of patterns are the same, in order. */
export const samePatterns = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((p, i) => p === b[i]);

/**
 * The package remembers the answer for every path (and parent folder) it is asked about: a
 * matcher is made anew after this many questions, so that memory does not grow with the tree.
 */
const ANSWERS_KEPT = 20_000;

/** A matcher of the patterns an entry applies, in order (a later `!pattern` takes back an earlier one). */
export class IgnoreRules {
  private matcher: Ignore;
  private asked = 0;

  constructor(readonly patterns: readonly string[]) {
    this.matcher = this.make();
  }

  private make(): Ignore {
    return ignore({ allowRelativePaths: true }).add([...this.patterns]);
  }

  /** A matcher, or null when there is nothing to ignore (the common case costs nothing). */
  static of(patterns: readonly string[]): IgnoreRules | null {
    return patterns.length > 0 ? new IgnoreRules(patterns) : null;
  }

  /**
   * Whether `rel` (relative to the root, `/`-separated) is ignored, or lies in an ignored folder.
   * `folder`: it is a folder, so that `build/` (folders only) matches it too.
   */
  ignores(rel: string, folder = false): boolean {
    if (++this.asked > ANSWERS_KEPT) {
      this.asked = 0;
      this.matcher = this.make();
    }
    try {
      return this.matcher.ignores(folder ? `${rel}/` : rel);
    } catch {
      return false; // a path the package refuses to judge is not one of its patterns'
    }
  }
}
