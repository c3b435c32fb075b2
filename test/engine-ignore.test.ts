import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Catalogue } from '../src/store/catalogue.js';
import { SyncEngine, type EntryConfig } from '../src/sync/engine.js';
import { fidOf } from '../src/paths.js';
import { checkPatterns, IgnoreRules, patternsOfFile } from '../src/ignore-rules.js';
import type { Rule } from '../machines/rules.js';
import type { FileStat, JobOutcome, ScannedFile } from '../machines/reports.js';
import type { JobCommand } from '../src/drivers/protocol.js';
import { tempDir } from './helpers.js';

/**
 * Ignore patterns: the matcher every driver and the daemon share, and the sync engine on a real
 * SQLite file treating an entry as neither holding nor owning what it ignores.
 */

describe('IgnoreRules', () => {
  it('matches gitignore patterns, folders only with a trailing slash, and what lies inside an ignored folder', () => {
    const rules = new IgnoreRules(['*.log', 'build/', '/only-at-root.txt', '!keep.log']);
    expect(rules.ignores('a.log')).toBe(true);
    expect(rules.ignores('deep/er/a.log')).toBe(true);
    expect(rules.ignores('keep.log')).toBe(false);
    expect(rules.ignores('build')).toBe(false);
    expect(rules.ignores('build', true)).toBe(true);
    expect(rules.ignores('build/x.txt')).toBe(true);
    expect(rules.ignores('src/build/x.txt')).toBe(true);
    expect(rules.ignores('only-at-root.txt')).toBe(true);
    expect(rules.ignores('sub/only-at-root.txt')).toBe(false);
    // Odd but legal names are judged, never refused.
    for (const odd of ['..dots..', 'sub/...', ' lead']) expect(rules.ignores(odd), odd).toBe(false);
    expect(IgnoreRules.of([])).toBeNull();
  });

  it('reads an ignore file: its lines, without blanks and comments', () => {
    expect(patternsOfFile('\uFEFF# comment\n*.tmp\n\n  \nbuild/\r\n\\#literal\n')).toEqual(['*.tmp', 'build/', '\\#literal']);
  });

  it("checks a setup's list", () => {
    expect(checkPatterns(['*.log', 'tmp/'])).toEqual({ ok: true, value: ['*.log', 'tmp/'] });
    expect(checkPatterns('*.log')).toEqual({ ok: false, reason: 'must be a list of patterns (strings, in gitignore syntax)' });
    expect(checkPatterns(['*.log', 3])).toEqual({ ok: false, reason: '[1]: must be a string (a pattern in gitignore syntax)' });
    expect(checkPatterns(['a\nb'])).toEqual({ ok: false, reason: '[0]: must be one line, without NUL' });
    expect(checkPatterns([' '])).toEqual({ ok: false, reason: '[0]: must not be empty' });
  });
});

const NAMES = ['A', 'B'] as const;
type Name = (typeof NAMES)[number];
const BOTH: Rule[] = [{ match: { path: '/' }, sync: ['A', 'B'] }];
const stat = (size: number, mtime: number): FileStat => ({ size, mtime, ino: null });

let dir: string;
let store: Catalogue;

beforeEach(async () => {
  dir = await tempDir('ferry-engine-ignore-');
  store = new Catalogue(path.join(dir, 'catalogue.db'));
});

afterEach(() => {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function makeEngine(ignore: Partial<Record<Name, string[]>> = {}) {
  const entries = new Map<string, EntryConfig>(
    NAMES.map((name) => [name, { name, driver: 'local_storage', options: { root: name }, resolved: { root: path.join(dir, name) }, ignore: ignore[name] ?? [] }]),
  );
  const engine = new SyncEngine(store, entries, BOTH, pino({ level: 'silent' }));
  const changed = (entry: Name, p: string, s: FileStat) => engine.handle({ type: 'file.changed', entry, path: p, stat: s });
  const deleted = (entry: Name, p: string) => engine.handle({ type: 'file.deleted', entry, path: p });
  const scanned = (entry: Name, files: ScannedFile[]) => engine.handle({ type: 'entry.scanned', entry, files });
  const take = (entry: Name) => engine.takeJobs(entry, 100, () => true, new Set());
  const settle = () => {
    for (let round = 0; round < 10; round++) {
      let ran = 0;
      for (const name of NAMES) {
        for (const command of take(name)) {
          ran++;
          const outcome: JobOutcome = { ok: true, stat: command.kind === 'upload' ? command.sourceStat : command.kind === 'move' ? command.expect : null };
          engine.handle({ type: 'job.finished', entry: name, jobId: command.id, outcome });
        }
      }
      if (ran === 0) return;
    }
    throw new Error('jobs never settled');
  };
  return { engine, changed, deleted, scanned, take, settle };
}

const kinds = (commands: JobCommand[]) => commands.map((c) => `${c.kind} ${c.path}`);
const file = (name: string) => store.file(fidOf(name));

describe('the sync engine and an entry that ignores a path', () => {
  it('never gives it a job for the path, and never records the path from it', () => {
    const { changed, scanned, take } = makeEngine({ B: ['*.log'] });
    changed('A', 'a.log', stat(3, 1000));
    expect(file('a.log')).toMatchObject({ owners: ['A'], uptodate: ['A'] });
    expect(take('B')).toEqual([]);
    // A report from B of what it ignores (one that crossed new patterns) is not recorded.
    changed('B', 'b.log', stat(3, 1000));
    expect(file('b.log')).toBeUndefined();
    scanned('B', [{ path: 'c.log', ...stat(1, 1) }, { path: 'c.txt', ...stat(1, 1) }]);
    expect(file('c.log')).toBeUndefined();
    expect(file('c.txt')).toMatchObject({ owners: ['A', 'B'] });
    expect(kinds(take('A'))).toEqual(['upload c.txt']);
  });

  it('a pattern added later deletes nothing: the entry stops holding and owning what it matches', () => {
    const { engine, changed, deleted, take, settle } = makeEngine();
    changed('A', 'x.log', stat(3, 1000));
    changed('A', 'only-b.log', stat(3, 1000));
    settle();
    deleted('A', 'only-b.log');
    // B's copy of only-b.log is due for deletion when B starts ignoring *.log.
    const due = take('B');
    expect(kinds(due)).toEqual(['delete only-b.log']);
    engine.requeue(due.map((c) => c.id));
    expect(file('x.log')).toMatchObject({ owners: ['A', 'B'], uptodate: ['A', 'B'] });

    expect(engine.setIgnore('B', ['*.log'])).toEqual([]);
    expect(file('x.log')).toMatchObject({ owners: ['A'], uptodate: ['A'] });
    expect(store.replica('B', fidOf('x.log'))).toBeUndefined();
    // No job for B, none elsewhere because of it: A keeps its copy, B its own.
    expect(take('A')).toEqual([]);
    expect(take('B')).toEqual([]);
    // A deletes it: nothing reaches B.
    deleted('A', 'x.log');
    expect(take('B')).toEqual([]);
    expect(file('x.log')).toBeUndefined();
    // The same patterns again change nothing; they are stored for the next start.
    expect(engine.setIgnore('B', ['*.log'])).toEqual([]);
    expect(store.ignores.get('B')).toEqual(['*.log']);
  });

  it('a file only the ignoring entry held leaves the catalogue, and comes back when the pattern goes', () => {
    const { engine, changed, take, settle } = makeEngine();
    changed('B', 'b.tmp', stat(2, 1000));
    const due = take('A');
    expect(kinds(due)).toEqual(['upload b.tmp']);
    engine.requeue(due.map((c) => c.id));
    engine.setIgnore('B', ['*.tmp']);
    expect(file('b.tmp')).toBeUndefined();
    expect(take('A')).toEqual([]);
    // The pattern removed: B's worker rescans and reports the file again.
    engine.setIgnore('B', []);
    changed('B', 'b.tmp', stat(2, 1000));
    expect(store.jobsOf(fidOf('b.tmp')).map((j) => `${j.kind} ${j.entry}`)).toEqual(['upload A']);
    settle();
    expect(file('b.tmp')).toMatchObject({ owners: ['A', 'B'], uptodate: ['A', 'B'] });
  });

  it('the patterns stored apply from the next start, before the worker says them again', () => {
    makeEngine().engine.setIgnore('B', ['*.log']);
    const { changed, take } = makeEngine();
    changed('A', 'late.log', stat(1, 1));
    expect(take('B')).toEqual([]);
    expect(file('late.log')).toMatchObject({ owners: ['A'] });
  });
});
