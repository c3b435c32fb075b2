import fs from 'node:fs';
import path from 'node:path';
import type { Rule } from '../machines/rules.js';
import { drivers, publicOptions } from './drivers/registry.js';
import type { EntryConfig } from './entry-config.js';
import { validateRules } from './rules/validate.js';
import { unknownName } from './did-you-mean.js';

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

/** The keys a setup file and each of its entries may hold. */
const SETUP_KEYS = ['name', 'entries', 'rules', 'max_delete_share'];
const ENTRY_KEYS = ['driver', 'options'];

/** The setup file as messages name it: relative to the working folder. */
const shownName = (absolute: string) => path.relative(process.cwd(), absolute) || absolute;

export function loadSetup(file: string): Setup {
  const absolute = path.resolve(file);
  const shown = shownName(absolute);
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SetupError(`setup ${shown}: ${code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new SetupError(`setup ${shown}: ${describeJsonError(text.replace(/^\uFEFF/, ''), (err as Error).message)}`);
  }
  const fail = (reason: string): never => {
    throw new SetupError(`setup ${shown}: ${reason}`);
  };
  const onlyKnown = (value: Record<string, unknown>, known: readonly string[], at: string) => {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) fail(`${at}${key}: ${unknownName(key, known)}`);
    }
  };
  if (!isObject(raw)) return fail('must be a JSON object');
  onlyKnown(raw, SETUP_KEYS, '');
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
    onlyKnown(entry, ENTRY_KEYS, `${at}.`);
    if (typeof entry.driver !== 'string') fail(`${at}.driver: missing (known drivers: ${Object.keys(drivers).join(', ')})`);
    const spec = drivers[entry.driver as string];
    if (!spec) fail(`${at}.driver: unknown driver "${entry.driver}" (known drivers: ${Object.keys(drivers).join(', ')})`);
    const options = entry.options ?? {};
    if (!isObject(options)) return fail(`${at}.options: must be an object`);
    const resolved = spec.resolveOptions(options, path.dirname(absolute));
    if (!resolved.ok) return fail(`${at}.options.${resolved.reason}`);
    // What the API shows: the options as written, any secret written inline masked (the worker
    // gets the resolved ones); and the local folder the entry keeps, if any.
    entries.push({
      name,
      driver: entry.driver as string,
      options: publicOptions(entry.driver as string, options),
      resolved: resolved.value,
      folder: spec.folder?.(resolved.value) ?? null,
    });
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

/**
 * What is wrong with `text`, which JSON.parse refused with `message`: `invalid JSON at line 3,
 * column 14: Unexpected token ']'`. The place comes from the message (`(line L column C)`, or
 * `at position N`) or, when V8 gives none, from scanning the text for the first fault.
 */
export function describeJsonError(text: string, message: string): string {
  let place: { line: number; column: number } | null = null;
  const lineColumn = /\(line (\d+) column (\d+)\)/.exec(message);
  if (lineColumn) {
    place = { line: Number(lineColumn[1]), column: Number(lineColumn[2]) };
  } else {
    const position = /at position (\d+)/.exec(message);
    const offset = position ? Number(position[1]) : jsonErrorOffset(text);
    if (offset >= 0) place = lineAndColumn(text, Math.min(offset, text.length));
  }
  const reason = message
    .replace(/^(Unexpected token '.+?'), [\s\S]* is not valid JSON$/, '$1')
    .replace(/\s*\(line \d+ column \d+\)/, '')
    .replace(/ in JSON at position \d+/, '')
    .replace(/\s+/g, ' ')
    .trim();
  return place ? `invalid JSON at line ${place.line}, column ${place.column}: ${reason}` : `invalid JSON: ${reason}`;
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lines = before.split('\n');
  return { line: lines.length, column: lines[lines.length - 1]!.length + 1 };
}

/** Where the first fault of `text` as JSON is (its length when it ends too soon), or -1 if none is found. */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  class Fault {
    constructor(readonly at: number) {}
  }
  const fault = (): never => {
    throw new Fault(i);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const digits = () => {
    const start = i;
    while (i < text.length && text[i]! >= '0' && text[i]! <= '9') i++;
    if (i === start) fault();
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fault();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fault();
      if (c === 0x5c) {
        i++;
        if (i >= text.length) fault();
        if (text[i] === 'u') {
          for (let k = 0; k < 4; k++) {
            i++;
            if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fault();
          }
        } else if (!'"\\/bfnrt'.includes(text[i]!)) fault();
      }
      i++;
    }
  };
  const value = (): void => {
    space();
    const c = text[i];
    if (c === undefined) fault();
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      space();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          space();
          if (text[i] !== '"') fault();
          string();
          space();
          if (text[i] !== ':') fault();
          i++;
        }
        value();
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === close) {
          i++;
          return;
        }
        fault();
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c! >= '0' && c! <= '9')) {
      if (c === '-') i++;
      if (text[i] === '0') i++;
      else digits();
      if (text[i] === '.') {
        i++;
        digits();
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++;
        if (text[i] === '+' || text[i] === '-') i++;
        digits();
      }
      return;
    }
    for (const literal of ['true', 'false', 'null']) {
      if (literal[0] !== c) continue;
      for (const ch of literal) {
        if (text[i] !== ch) fault();
        i++;
      }
      return;
    }
    fault();
  };
  try {
    value();
    space();
    if (i < text.length) fault();
    return -1;
  } catch (err) {
    if (err instanceof Fault) return err.at;
    return -1; // nested too deep to scan
  }
}

/** `p` with every symbolic link resolved as far as it exists; the missing rest appended as written. */
export function realPath(p: string): string {
  const rest: string[] = [];
  let existing = p;
  for (;;) {
    try {
      return path.join(fs.realpathSync(existing), ...rest);
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return p;
      rest.unshift(path.basename(existing));
      existing = parent;
    }
  }
}

/** Whether `inner` lies strictly inside `outer` (whole segments: /d/AB is not inside /d/A). */
function inside(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

/**
 * Checks the places a setup uses, before anything is created: every local root that exists is
 * a folder; no root equals, contains or lies inside another (symbolic links resolved); and the
 * data dir lies inside no root. A missing root is left to its entry, which refuses to start.
 */
export function checkPlaces(setup: Setup, dataDir: string): void {
  const fail = (reason: string): never => {
    throw new SetupError(`setup ${shownName(setup.file)}: ${reason}`);
  };
  const roots: { at: string; folder: string; real: string }[] = [];
  for (const entry of setup.entries) {
    const folder = drivers[entry.driver]?.folder?.(entry.resolved);
    if (folder === undefined) continue;
    const at = `entries.${entry.name}.options.root`;
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(folder);
    } catch {
      stat = undefined; // missing (or unreadable): the entry's own start says why
    }
    if (stat && !stat.isDirectory()) fail(`${at}: ${folder} is not a folder`);
    roots.push({ at, folder, real: realPath(folder) });
  }
  const shown = (r: { at: string; folder: string; real: string }) =>
    `${r.at} (${r.folder}${r.real === r.folder ? '' : `, which resolves to ${r.real}`})`;
  for (let i = 0; i < roots.length; i++) {
    for (let j = i + 1; j < roots.length; j++) {
      const [a, b] = [roots[i]!, roots[j]!];
      if (a.real === b.real) fail(`${shown(b)} is the same folder as ${shown(a)}; roots may not overlap`);
      if (inside(b.real, a.real)) fail(`${shown(b)} lies inside ${shown(a)}; roots may not overlap`);
      if (inside(a.real, b.real)) fail(`${shown(a)} lies inside ${shown(b)}; roots may not overlap`);
    }
  }
  const data = realPath(dataDir);
  for (const r of roots) {
    if (data === r.real || inside(data, r.real)) {
      const it = `the data dir (${dataDir}${data === dataDir ? '' : `, which resolves to ${data}`})`;
      fail(
        `${it} ${data === r.real ? 'is the same folder as' : 'lies inside'} ${shown(r)}; ` +
          'its store would be synced as files: give a --data-dir outside every root',
      );
    }
  }
}
