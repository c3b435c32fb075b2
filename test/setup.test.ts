import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSetup, SetupError, writeSetupRules } from '../src/setup.js';
import { SPEC_RULES, tempDir } from './helpers.js';

let dir: string;

beforeEach(async () => {
  dir = await tempDir('ferry-setup-');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(content: unknown, name = 'setup.json'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

const local = (root: unknown) => ({ driver: 'local_storage', options: { root } });

/** What local_storage resolves the options it was not given to. */
const DEFAULTS = { settle_ms: 2, rescan_interval: 3600, poll_interval: 30 };

/** The SetupError loading `content` gives. */
function failure(content: unknown): SetupError {
  const file = write(content);
  try {
    loadSetup(file);
  } catch (err) {
    expect(err).toBeInstanceOf(SetupError);
    expect((err as Error).name).toBe('SetupError');
    expect((err as Error).message).toContain('setup.json');
    return err as SetupError;
  }
  throw new Error('loadSetup accepted a bad setup');
}

describe('loadSetup', () => {
  it('reads a valid setup and resolves relative roots against its folder', () => {
    const file = write({
      name: 'example',
      entries: { A: local('A'), B: local('../elsewhere/B'), C: local('/srv/C') },
      rules: SPEC_RULES,
    });
    const setup = loadSetup(file);
    expect(setup).toEqual({
      file,
      name: 'example',
      entries: [
        { name: 'A', driver: 'local_storage', options: { root: 'A' }, resolved: { root: path.join(dir, 'A'), ...DEFAULTS }, folder: path.join(dir, 'A') },
        {
          name: 'B',
          driver: 'local_storage',
          options: { root: '../elsewhere/B' },
          resolved: { root: path.resolve(dir, '../elsewhere/B'), ...DEFAULTS },
          folder: path.resolve(dir, '../elsewhere/B'),
        },
        { name: 'C', driver: 'local_storage', options: { root: '/srv/C' }, resolved: { root: '/srv/C', ...DEFAULTS }, folder: '/srv/C' },
      ],
      rules: SPEC_RULES,
      maxDeleteShare: 0.5,
    });
  });

  it('takes max_delete_share from 0 to 1, and names it when it is wrong', async () => {
    for (const bad of [-0.1, 1.5, '0.5']) {
      const f = path.join(dir, 'share.json');
      fs.writeFileSync(f, JSON.stringify({ entries: { A: { driver: 'local_storage', options: { root: 'A' } } }, max_delete_share: bad }));
      expect(() => loadSetup(f)).toThrow(/max_delete_share: must be a number from 0 to 1/);
    }
    const f = path.join(dir, 'share.json');
    fs.writeFileSync(f, JSON.stringify({ entries: { A: { driver: 'local_storage', options: { root: 'A' } } }, max_delete_share: 0.25 }));
    expect(loadSetup(f).maxDeleteShare).toBe(0.25);
  });

  it('resolves roots against the setup file, not the working folder', () => {
    const sub = path.join(dir, 'conf');
    fs.mkdirSync(sub);
    const file = write({ entries: { A: local('A') } }, 'conf/ferry.json');
    const cwd = process.cwd();
    expect(cwd).not.toBe(sub);
    const setup = loadSetup(path.relative(cwd, file));
    expect(setup.file).toBe(file);
    expect(setup.entries[0]!.resolved.root).toBe(path.join(sub, 'A'));
  });

  it('defaults the name to the file name and the rules to none', () => {
    const setup = loadSetup(write({ entries: { A: local('A') } }, 'office.json'));
    expect(setup.name).toBe('office');
    expect(setup.rules).toEqual([]);
  });

  it('refuses a missing file', () => {
    expect(() => loadSetup(path.join(dir, 'nope.json'))).toThrow(/setup .*nope\.json: file not found/);
  });

  it('refuses bad JSON, saying at which line and column', () => {
    // V8 gives a position, or (for an unexpected token) none: the place is found either way.
    expect(failure('{"entries": {').message).toMatch(/: invalid JSON at line 1, column 14: /);
    expect(failure('{\n  "entries": {\n    "A": ]\n}').message).toBe(
      `setup ${path.relative(process.cwd(), path.join(dir, 'setup.json'))}: invalid JSON at line 3, column 10: Unexpected token ']'`,
    );
    expect(failure('{\n  "name": "x"\n  "entries": {}\n}').message).toMatch(/: invalid JSON at line 3, column 3: /);
    expect(failure('').message).toMatch(/: invalid JSON at line 1, column 1: Unexpected end of JSON input$/);
    // One line, whatever V8 quotes of the text.
    expect(failure('[\n1,\n]').message).not.toContain('\n');
  });

  it('refuses an unknown key at every level, naming a close known one', () => {
    const A = local('A');
    expect(failure({ entries: { A }, rulez: [] }).message).toMatch(/: rulez: unknown key \(did you mean "rules"\?\)$/);
    expect(failure({ entries: { A }, max_delete: 0.1 }).message).toMatch(/: max_delete: unknown key \(did you mean "max_delete_share"\?\)$/);
    expect(failure({ entries: { A }, comment: 'x' }).message).toMatch(/: comment: unknown key$/);
    expect(failure({ entries: { A: { ...A, option: {} } } }).message).toMatch(
      /: entries\.A\.option: unknown key \(did you mean "options"\?\)$/,
    );
    expect(failure({ entries: { A: { driver: 'local_storage', options: { rot: 'A' } } } }).message).toMatch(
      /: entries\.A\.options\.rot: unknown option \(did you mean "root"\?\)$/,
    );
    expect(failure({ entries: { A: { driver: 'local_storage', options: { root: 'A', settle: 5 } } } }).message).toMatch(
      /: entries\.A\.options\.settle: unknown option \(did you mean "settle_ms"\?\)$/,
    );
    expect(failure({ entries: { A: { driver: 'local_storage', options: { root: 'A', colour: 'red' } } } }).message).toMatch(
      /: entries\.A\.options\.colour: unknown option$/,
    );
    expect(failure({ entries: { A }, rules: [{ match: { path: '/' }, sinc: ['A'] }] }).message).toMatch(
      /: rules\[0\]\.sinc: unknown field \(did you mean "sync"\?\)$/,
    );
    expect(failure({ entries: { A }, rules: [{ match: { pth: '/' }, sync: ['A'] }] }).message).toMatch(
      /: rules\[0\]\.match\.pth: unknown field \(did you mean "path"\?\)$/,
    );
  });

  it('takes the local_storage timing options, checked, with their defaults', () => {
    const with_ = (options: Record<string, unknown>) =>
      write({ entries: { A: { driver: 'local_storage', options: { root: 'A', ...options } } } });
    expect(loadSetup(with_({ settle_ms: 0, rescan_interval: 0.5, poll_interval: 120 })).entries[0]!.resolved).toEqual({
      root: path.join(dir, 'A'),
      settle_ms: 0,
      rescan_interval: 0.5,
      poll_interval: 120,
    });
    expect(loadSetup(with_({ settle_ms: 250 })).entries[0]!.resolved).toEqual({ root: path.join(dir, 'A'), ...DEFAULTS, settle_ms: 250 });
    for (const bad of [-1, 1.5, '10', null]) {
      expect(() => loadSetup(with_({ settle_ms: bad }))).toThrow(/entries\.A\.options\.settle_ms: must be a whole number of milliseconds, 0 or more$/);
    }
    for (const key of ['rescan_interval', 'poll_interval']) {
      for (const bad of [0, -3, '60', null]) {
        expect(() => loadSetup(with_({ [key]: bad }))).toThrow(new RegExp(`entries\\.A\\.options\\.${key}: must be a number of seconds greater than 0$`));
      }
    }
  });

  it('refuses what is not an object', () => {
    expect(failure([]).message).toMatch(/: must be a JSON object$/);
  });

  it('refuses a name that is not a string', () => {
    expect(failure({ name: 3, entries: { A: local('A') } }).message).toMatch(/: name: must be a string$/);
  });

  it('refuses missing or empty entries', () => {
    expect(failure({ rules: [] }).message).toMatch(/: entries: must be an object of entries by name$/);
    expect(failure({ entries: {} }).message).toMatch(/: entries: at least one entry is needed$/);
  });

  it('refuses a bad entry name', () => {
    expect(failure({ entries: { 'my entry': local('A') } }).message).toMatch(/: entries\.my entry: bad entry name/);
    expect(failure({ entries: { 'a/b': local('A') } }).message).toMatch(/: entries\.a\/b: bad entry name/);
  });

  it('refuses an entry without a known driver', () => {
    expect(failure({ entries: { A: 'local' } }).message).toMatch(/: entries\.A: must be an object/);
    expect(failure({ entries: { A: { options: { root: 'A' } } } }).message).toMatch(
      /: entries\.A\.driver: missing \(known drivers: local_storage, sftp, s3\)$/,
    );
    expect(failure({ entries: { A: { driver: 'ftp', options: {} } } }).message).toMatch(
      /: entries\.A\.driver: unknown driver "ftp" \(known drivers: local_storage, sftp, s3\)$/,
    );
  });

  it('refuses bad options, naming the option', () => {
    expect(failure({ entries: { A: { driver: 'local_storage', options: [] } } }).message).toMatch(
      /: entries\.A\.options: must be an object$/,
    );
    expect(failure({ entries: { A: { driver: 'local_storage' } } }).message).toMatch(/: entries\.A\.options\.root: missing/);
    expect(failure({ entries: { A: local('') } }).message).toMatch(/: entries\.A\.options\.root: must be a non-empty string$/);
    expect(failure({ entries: { A: local(5) } }).message).toMatch(/: entries\.A\.options\.root: must be a non-empty string$/);
  });

  it('refuses a rule naming an unknown entry', () => {
    const error = failure({ entries: { A: local('A'), B: local('B') }, rules: [{ match: { path: '/' }, sync: ['A', 'C'] }] });
    expect(error.message).toMatch(/: rules\[0\]\.sync\[1\]: unknown entry "C"$/);
  });

  it('refuses bad rules', () => {
    expect(failure({ entries: { A: local('A') }, rules: {} }).message).toMatch(/: rules: must be a list of rules$/);
  });
});

describe('writeSetupRules', () => {
  it('replaces the rules and keeps everything else', () => {
    const original = {
      name: 'example',
      entries: { A: local('A'), B: { driver: 'local_storage', options: { root: 'B', settle_ms: 50 } } },
      rules: SPEC_RULES,
      max_delete_share: 0.25,
    };
    const file = write(original);
    const rules = [{ match: { path: '/photos/', mime: ['image/*'] }, sync: ['B'], ban: ['A'] }];

    writeSetupRules(file, rules);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ ...original, rules });
    expect(loadSetup(file).rules).toEqual(rules);
  });

  it('writes through a temporary file that it leaves nowhere', () => {
    const file = write({ entries: { A: local('A') } });
    const inode = fs.statSync(file).ino;
    writeSetupRules(file, [{ match: { path: '/' }, sync: ['A'] }]);
    expect(fs.readdirSync(dir)).toEqual(['setup.json']);
    // A rename over the file, not a write into it.
    expect(fs.statSync(file).ino).not.toBe(inode);
    expect(fs.readFileSync(file, 'utf8').endsWith('}\n')).toBe(true);
  });

  it("keeps the file's permissions", () => {
    const file = write({ entries: { A: local('A') } });
    fs.chmodSync(file, 0o640);
    writeSetupRules(file, []);
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
  });

  it('leaves the file as it was when it cannot be read as JSON', () => {
    const file = write('{ not json');
    expect(() => writeSetupRules(file, [])).toThrow(SyntaxError);
    expect(fs.readFileSync(file, 'utf8')).toBe('{ not json');
    expect(fs.readdirSync(dir)).toEqual(['setup.json']);
  });
});
