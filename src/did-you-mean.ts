/** Edit distance (insertions, deletions, substitutions) between two strings. */
export function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The known name `word` was probably meant to be: one at most 2 edits away (case ignored), or
 * one that starts with it or that it starts with (`settle` → `settle_ms`); the closest first.
 */
export function closest(word: string, known: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: { name: string; score: number } | undefined;
  for (const name of known) {
    const n = name.toLowerCase();
    const distance = levenshtein(w, n);
    const prefix = w.length >= 2 && (n.startsWith(w) || w.startsWith(n));
    if (distance > 2 && !prefix) continue;
    // A prefix match ranks after any small edit, before nothing.
    const score = distance <= 2 ? distance : 3;
    if (!best || score < best.score) best = { name, score };
  }
  return best?.name;
}

/** `unknown key (did you mean "rules"?)`, or `unknown key` when nothing known is close. */
export function unknownName(word: string, known: readonly string[], what = 'key'): string {
  const guess = closest(word, known);
  return `unknown ${what}${guess === undefined ? '' : ` (did you mean "${guess}"?)`}`;
}
