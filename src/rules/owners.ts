import { createRequire } from 'node:module';
import type { Rule } from '../../machines/rules.js';

/**
 * mime-types, loaded at the first rule that matches by type: its database (230 KiB of object
 * literal, then indexed) is most of the daemon's code to load, and most setups never ask it.
 */
let mime: typeof import('mime-types') | null = null;
const requireModule = createRequire(import.meta.url);

/** Whether `rule.match.path` is a prefix of "/" + filename on segment boundaries. */
export function pathMatches(prefix: string, filename: string): boolean {
  const full = '/' + filename;
  if (prefix === '' || prefix === '/') return true;
  if (prefix.endsWith('/')) return full.startsWith(prefix) || full === prefix.slice(0, -1);
  return full === prefix || full.startsWith(prefix + '/');
}

export function mimeMatches(patterns: string[] | undefined, filename: string): boolean {
  if (!patterns) return true;
  mime ??= requireModule('mime-types') as typeof import('mime-types');
  const type = mime.lookup(filename) || 'application/octet-stream';
  return patterns.some((p) => (p.endsWith('/*') ? type.startsWith(p.slice(0, -1)) : p === type));
}

export function ruleMatches(rule: Rule, filename: string): boolean {
  return pathMatches(rule.match.path, filename) && mimeMatches(rule.match.mime, filename);
}

/**
 * A file's owners: the entries already holding it, plus every matching rule's `sync`, minus
 * every matching rule's `ban`, rules taken in order. Returned sorted.
 */
export function computeOwners(filename: string, holders: Iterable<string>, rules: Rule[]): string[] {
  const owners = new Set(holders);
  for (const rule of rules) {
    if (!ruleMatches(rule, filename)) continue;
    for (const name of rule.sync ?? []) owners.add(name);
    for (const name of rule.ban ?? []) owners.delete(name);
  }
  return [...owners].sort();
}
