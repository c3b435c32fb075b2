import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { api, daemonHarness, startDaemon, until, writeSetup, type RunningDaemon } from './helpers.js';

/** What syncs besides file contents: folders (empty ones too) and symbolic links inside the root. */

const harness = daemonHarness('ferry-folders-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const at = (entry: string, rel: string) => path.join(dir, entry, rel);
const isDir = (p: string) => fs.existsSync(p) && fs.lstatSync(p).isDirectory();
const linkTarget = (p: string) => {
  try {
    return fs.lstatSync(p).isSymbolicLink() ? fs.readlinkSync(p) : null;
  } catch {
    return null;
  }
};

async function daemon(): Promise<RunningDaemon> {
  const setupFile = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] });
  const d = await startDaemon(setupFile);
  daemons.push(d);
  return d;
}

describe('folders', () => {
  it('creates and removes empty folders, nested ones too', async () => {
    await daemon();
    await fsp.mkdir(at('A', 'empty'));
    await fsp.mkdir(at('A', 'deep/er/est'), { recursive: true });
    await until('empty in B', () => isDir(at('B', 'empty')));
    await until('deep/er/est in B', () => isDir(at('B', 'deep/er/est')));

    await fsp.rmdir(at('A', 'empty'));
    await fsp.rm(at('A', 'deep'), { recursive: true });
    await until('empty gone from B', () => !fs.existsSync(at('B', 'empty')));
    await until('deep gone from B', () => !fs.existsSync(at('B', 'deep')));
  });

  it('keeps a folder its files left: deleting the last file does not delete the folder', async () => {
    await fsp.mkdir(at('A', 'kept'), { recursive: true });
    await fsp.writeFile(at('A', 'kept/only.txt'), 'only');
    await daemon();
    await until('kept/only.txt in B', () => fs.existsSync(at('B', 'kept/only.txt')));
    await fsp.unlink(at('A', 'kept/only.txt'));
    await until('only.txt gone from B', () => !fs.existsSync(at('B', 'kept/only.txt')));
    // Settled: the empty folder stays in both, as it is in A.
    await new Promise((r) => setTimeout(r, 500));
    expect(isDir(at('A', 'kept'))).toBe(true);
    expect(isDir(at('B', 'kept'))).toBe(true);
  });

  it('syncs empty folders found at start, and lists folders in no file listing', async () => {
    await fsp.mkdir(at('A', 'a/b'), { recursive: true });
    await fsp.writeFile(at('A', 'a/file.txt'), 'x');
    const d = await daemon();
    await until('a/b in B', () => isDir(at('B', 'a/b')));
    const files = (await api(d.api, 'GET', '/files')).body.files.map((f: { filename: string }) => f.filename);
    expect(files).toEqual(['a/file.txt']);
  });
});

describe('symbolic links', () => {
  it('recreates a link whose target stays inside the root as a link, never followed', async () => {
    await fsp.mkdir(at('A', 'docs'), { recursive: true });
    await fsp.writeFile(at('A', 'docs/target.txt'), 'the target');
    await daemon();
    await until('target in B', () => fs.existsSync(at('B', 'docs/target.txt')));
    await fsp.symlink('target.txt', at('A', 'docs/link'));
    await fsp.mkdir(at('A', 'sub'));
    await fsp.symlink('../docs/target.txt', at('A', 'sub/up-link'));
    await until('docs/link in B', () => linkTarget(at('B', 'docs/link')) === 'target.txt');
    await until('sub/up-link in B', () => linkTarget(at('B', 'sub/up-link')) === '../docs/target.txt');
    expect(fs.readFileSync(at('B', 'docs/link'), 'utf8')).toBe('the target');

    // Pointed elsewhere: the new target follows; removed: removed.
    await fsp.unlink(at('A', 'docs/link'));
    await fsp.symlink('../sub/up-link', at('A', 'docs/link'));
    await until('docs/link repointed in B', () => linkTarget(at('B', 'docs/link')) === '../sub/up-link');
    await fsp.unlink(at('A', 'sub/up-link'));
    await until('sub/up-link gone from B', () => linkTarget(at('B', 'sub/up-link')) === null);
  });

  it('skips a link leading out of the root, with a warning', async () => {
    const outside = path.join(dir, 'outside.txt');
    await fsp.writeFile(outside, 'secret');
    await fsp.mkdir(at('A', ''), { recursive: true });
    await fsp.symlink(outside, at('A', 'absolute'));
    await fsp.symlink('../outside.txt', at('A', 'relative'));
    await fsp.writeFile(at('A', 'plain.txt'), 'plain');
    const d = await daemon();
    await until('plain.txt in B', () => fs.existsSync(at('B', 'plain.txt')));
    await new Promise((r) => setTimeout(r, 300));
    expect(fs.existsSync(at('B', 'absolute'))).toBe(false);
    expect(fs.existsSync(at('B', 'relative'))).toBe(false);
    const warnings = d.logs.filter((l) => l.level === 40 && String(l.msg).startsWith('skipped a symlink leading out of the root'));
    expect(warnings.map((l) => l.msg).sort()).toEqual([
      `skipped a symlink leading out of the root: absolute → ${outside}`,
      'skipped a symlink leading out of the root: relative → ../outside.txt',
    ]);
  });
});
