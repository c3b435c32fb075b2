import { IgnoreRules, samePatterns } from '../ignore-rules.js';

/**
 * The ignore patterns each entry applies, as the sync engine sees them: an entry never holds nor
 * owns a path it ignores (no job for it there, no deletion elsewhere because of it). Entries
 * without patterns cost nothing.
 */
export class EntryIgnores {
  private readonly byEntry = new Map<string, IgnoreRules>();

  constructor(initial: Iterable<[string, readonly string[]]> = []) {
    for (const [entry, patterns] of initial) this.set(entry, patterns);
  }

  /** Whether any entry ignores anything. */
  get any(): boolean {
    return this.byEntry.size > 0;
  }

  patterns(entry: string): readonly string[] {
    return this.byEntry.get(entry)?.patterns ?? [];
  }

  /** Sets an entry's patterns; returns its matchers before and after, or null when nothing changed. */
  set(entry: string, patterns: readonly string[]): { before: IgnoreRules | null; after: IgnoreRules | null } | null {
    const before = this.byEntry.get(entry) ?? null;
    if (samePatterns(before?.patterns ?? [], patterns)) return null;
    const after = IgnoreRules.of(patterns);
    if (after) this.byEntry.set(entry, after);
    else this.byEntry.delete(entry);
    return { before, after };
  }

  ignores(entry: string, filename: string, folder = false): boolean {
    if (this.byEntry.size === 0) return false;
    const rules = this.byEntry.get(entry);
    return rules !== undefined && rules.ignores(filename, folder);
  }

  /** `names` without the entries that ignore `filename`. */
  without<T extends string>(names: T[], filename: string, folder = false): T[] {
    return this.byEntry.size === 0 ? names : names.filter((n) => !this.ignores(n, filename, folder));
  }
}
