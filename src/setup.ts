import fs from 'node:fs';
import path from 'node:path';
import type { Rule } from '../machines/rules.js';
import { drivers } from './drivers/registry.js';
import type { EntryConfig } from './sync/engine.js';
import { validateRules } from './rules/validate.js';

export const ENTRY_NAME = /^[A-Za-z0-9_.-]+$/;

export interface Setup {
  /** Absolute path of the setup file. */
  file: string;
  name: string;
  entries: EntryConfig[];
  rules: Rule[];
  /** The share of an entry's files a rescan or reload may delete before the entry is paused. */
  maxDeleteShare: number;
}

/** A setup file that cannot be used; the message names the file and the faulty field. */
export class SetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SetupError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function loadSetup(file: string): Setup {
  const absolute = path.resolve(file);
  const shown = path.relative(process.cwd(), absolute) || absolute;
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SetupError(`setup ${shown}: ${code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SetupError(`setup ${shown}: invalid JSON: ${(err as Error).message}`);
  }
  const fail = (reason: string): never => {
    throw new SetupError(`setup ${shown}: ${reason}`);
  };
  if (!isObject(raw)) return fail('must be a JSON object');
  if (raw.name !== undefined && typeof raw.name !== 'string') fail('name: must be a string');
  if (!isObject(raw.entries)) return fail('entries: must be an object of entries by name');
  const names = Object.keys(raw.entries);
  if (names.length === 0) fail('entries: at least one entry is needed');

  const entries: EntryConfig[] = [];
  for (const name of names) {
    const at = `entries.${name}`;
    if (!ENTRY_NAME.test(name)) fail(`${at}: bad entry name (use letters, digits, "_", "." and "-")`);
    const entry = raw.entries[name];
    if (!isObject(entry)) return fail(`${at}: must be an object with "driver" and "options"`);
    if (typeof entry.driver !== 'string') fail(`${at}.driver: missing (known drivers: ${Object.keys(drivers).join(', ')})`);
    const spec = drivers[entry.driver as string];
    if (!spec) fail(`${at}.driver: unknown driver "${entry.driver}" (known drivers: ${Object.keys(drivers).join(', ')})`);
    const options = entry.options ?? {};
    if (!isObject(options)) return fail(`${at}.options: must be an object`);
    const resolved = spec.resolveOptions(options, path.dirname(absolute));
    if (!resolved.ok) return fail(`${at}.options.${resolved.reason}`);
    entries.push({ name, driver: entry.driver as string, options, resolved: resolved.value });
  }
  const rules = validateRules(raw.rules ?? [], new Set(names));
  if (!rules.ok) return fail(rules.reason);
  const share = raw.max_delete_share ?? 0.5;
  if (typeof share !== 'number' || !(share >= 0 && share <= 1)) fail('max_delete_share: must be a number from 0 to 1');
  return {
    file: absolute,
    name: (raw.name as string | undefined) ?? path.basename(absolute, '.json'),
    entries,
    rules: rules.value,
    maxDeleteShare: share as number,
  };
}

/**
 * Writes `rules` into the setup file in place of its rules, keeping everything else: through a
 * temporary file beside it, flushed, then renamed over it, so the file is never half written.
 */
export function writeSetupRules(file: string, rules: Rule[]): void {
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  raw.rules = rules;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.ferry-tmp-${process.pid}`);
  const fd = fs.openSync(tmp, 'w', fs.statSync(file).mode & 0o777);
  try {
    try {
      fs.writeSync(fd, JSON.stringify(raw, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
