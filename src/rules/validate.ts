import type { Rule } from '../../machines/rules.js';
import { unknownName } from '../did-you-mean.js';

const RULE_FIELDS = ['match', 'sync', 'ban'];
const MATCH_FIELDS = ['path', 'mime'];

export type Validation<T> = { ok: true; value: T } | { ok: false; reason: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a list of rules against the known entry names. The reason names the faulty field,
 * as `rules[1].sync[0]: unknown entry "C"`.
 */
export function validateRules(value: unknown, entryNames: ReadonlySet<string>, where = 'rules'): Validation<Rule[]> {
  if (!Array.isArray(value)) return { ok: false, reason: `${where}: must be a list of rules` };
  const rules: Rule[] = [];
  for (let i = 0; i < value.length; i++) {
    const at = `${where}[${i}]`;
    const raw = value[i];
    if (!isObject(raw)) return { ok: false, reason: `${at}: must be an object` };
    for (const key of Object.keys(raw)) {
      if (!RULE_FIELDS.includes(key)) return { ok: false, reason: `${at}.${key}: ${unknownName(key, RULE_FIELDS, 'field')}` };
    }
    if (!isObject(raw.match)) return { ok: false, reason: `${at}.match: must be an object` };
    for (const key of Object.keys(raw.match)) {
      if (!MATCH_FIELDS.includes(key)) {
        return { ok: false, reason: `${at}.match.${key}: ${unknownName(key, MATCH_FIELDS, 'field')}` };
      }
    }
    const { path, mime } = raw.match;
    if (typeof path !== 'string') return { ok: false, reason: `${at}.match.path: must be a string` };
    if (!path.startsWith('/')) return { ok: false, reason: `${at}.match.path: must start with "/"` };
    if (mime !== undefined) {
      if (!Array.isArray(mime)) return { ok: false, reason: `${at}.match.mime: must be a list of strings` };
      for (let j = 0; j < mime.length; j++) {
        if (typeof mime[j] !== 'string' || !/^[\w.+-]+\/(\*|[\w.+-]+)$/.test(mime[j])) {
          return { ok: false, reason: `${at}.match.mime[${j}]: must be a MIME type such as "image/png" or "image/*"` };
        }
      }
    }
    if (raw.sync === undefined && raw.ban === undefined) {
      return { ok: false, reason: `${at}: needs "sync" or "ban"` };
    }
    const rule: Rule = { match: mime === undefined ? { path } : { path, mime: [...(mime as string[])] } };
    for (const key of ['sync', 'ban'] as const) {
      const list = raw[key];
      if (list === undefined) continue;
      if (!Array.isArray(list)) return { ok: false, reason: `${at}.${key}: must be a list of entry names` };
      for (let j = 0; j < list.length; j++) {
        if (typeof list[j] !== 'string') return { ok: false, reason: `${at}.${key}[${j}]: must be an entry name` };
        if (!entryNames.has(list[j])) return { ok: false, reason: `${at}.${key}[${j}]: unknown entry "${list[j]}"` };
      }
      rule[key] = [...(list as string[])];
    }
    rules.push(rule);
  }
  return { ok: true, value: rules };
}
