import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalTransfers, type WatchHooks } from '../src/drivers/local-storage/transfers.js';
import type { JobCommand } from '../src/drivers/protocol.js';
import type { FileStat } from '../machines/reports.js';
import { statOf } from '../src/drivers/local-storage/stat.js';
import { tempDir } from './helpers.js';

/** The local_storage write side alone, on real folders, with no watcher: what an upload does on disk. */

let dir: string;
let src: string;
let dst: string;
let expected: [string, FileStat | null][];
let logs: string[];
let transfers: LocalTransfers;
let nextId: number;

beforeEach(async () => {
  dir = await tempDir('ferry-transfers-');
  src = path.join(dir, 'src');
  dst = path.join(dir, 'dst');
  await fsp.mkdir(src);
  await fsp.mkdir(dst);
  expected = [];
  logs = [];
  nextId = 1;
  const hooks: WatchHooks = {
    expect: (rel, stat) => void expected.push([rel, stat]),
    movedAway: () => {},
    unexpect: () => {},
    conflictCopy: () => {},
    moved: () => {},
  };
  transfers = new LocalTransfers(
    dst,
    {
      entry: 'B',
      options: { root: dst },
      knownFiles: 0,
      report: () => {},
      log: (_level, msg) => void logs.push(msg),
      progress: () => {},
      conflict: () => {},
    },
    hooks,
  );
});

afterEach(async () => {
  vi.restoreAllMocks();
  await fsp.rm(dir, { recursive: true, force: true });
});

const stat = (file: string) => statOf(fs.lstatSync(file));

function upload(rel: string, expect: FileStat | null, preserve = false): Promise<ReturnType<LocalTransfers['run']> extends Promise<infer T> ? T : never> {
  const job: JobCommand = {
    id: nextId++,
    kind: 'upload',
    path: rel,
    source: { entry: 'A', driver: 'local_storage', options: { root: src } },
    sourceStat: stat(path.join(src, rel)),
    expect,
    preserve,
  };
  return transfers.run(job);
}

describe('uploads and permission bits', () => {
  for (const size of [100, 200 << 10]) {
    it(`a copy (${size} bytes) gets the source's bits and its modification time to the microsecond`, async () => {
      fs.writeFileSync(path.join(src, 'f.bin'), Buffer.alloc(size, 7));
      fs.chmodSync(path.join(src, 'f.bin'), 0o640);
      const outcome = await upload('f.bin', null);
      const s = fs.lstatSync(path.join(dst, 'f.bin'));
      expect(s.mode & 0o7777).toBe(0o640);
      expect(Math.abs(s.mtimeMs - fs.lstatSync(path.join(src, 'f.bin')).mtimeMs)).toBeLessThan(0.002);
      expect(outcome).toEqual({ ok: true, stat: stat(path.join(dst, 'f.bin')) });
    });

    it(`only the bits changed (${size} bytes): the target is chmod-ed in place, same inode, not copied again`, async () => {
      fs.writeFileSync(path.join(src, 'f.bin'), Buffer.alloc(size, 7));
      fs.chmodSync(path.join(src, 'f.bin'), 0o644);
      const first = await upload('f.bin', null);
      expect(first.ok).toBe(true);
      const ino = fs.lstatSync(path.join(dst, 'f.bin')).ino;

      fs.chmodSync(path.join(src, 'f.bin'), 0o600);
      const second = await upload('f.bin', first.ok ? first.stat : null);
      const s = fs.lstatSync(path.join(dst, 'f.bin'));
      expect(s.ino).toBe(ino);
      expect(s.mode & 0o7777).toBe(0o600);
      expect(second).toEqual({ ok: true, stat: stat(path.join(dst, 'f.bin')) });
      // The watcher was told to expect the chmod, so that it is not reported back as an edit.
      expect(expected.at(-1)).toEqual(['f.bin', expect.objectContaining({ size, mode: 0o600 })]);
      expect(fs.readdirSync(dst).sort()).toEqual(['f.bin']);
    });
  }

  it('the same bits and bytes under another mtime are copied (a new version), not chmod-ed', async () => {
    fs.writeFileSync(path.join(src, 'f.txt'), 'same');
    fs.writeFileSync(path.join(dst, 'f.txt'), 'same');
    fs.utimesSync(path.join(dst, 'f.txt'), 1000, 1000);
    const ino = fs.lstatSync(path.join(dst, 'f.txt')).ino;
    const outcome = await upload('f.txt', stat(path.join(dst, 'f.txt')));
    expect(outcome.ok).toBe(true);
    expect(fs.lstatSync(path.join(dst, 'f.txt')).ino).not.toBe(ino);
    expect(Math.abs(fs.lstatSync(path.join(dst, 'f.txt')).mtimeMs - fs.lstatSync(path.join(src, 'f.txt')).mtimeMs)).toBeLessThan(0.002);
  });

  it('a target of the same size and time but other bytes is not taken for the source: copied, the unknown bytes kept aside', async () => {
    fs.writeFileSync(path.join(src, 'f.txt'), 'AAAA');
    fs.writeFileSync(path.join(dst, 'f.txt'), 'BBBB');
    const t = fs.lstatSync(path.join(src, 'f.txt'));
    fs.utimesSync(path.join(dst, 'f.txt'), t.atimeMs / 1000, t.mtimeMs / 1000);
    const outcome = await upload('f.txt', null);
    expect(outcome.ok).toBe(true);
    expect(fs.readFileSync(path.join(dst, 'f.txt'), 'utf8')).toBe('AAAA');
    const names = fs.readdirSync(dst).sort();
    expect(names).toHaveLength(2);
    expect(fs.readFileSync(path.join(dst, names.find((n) => n !== 'f.txt')!), 'utf8')).toBe('BBBB');
  });

  it('a damaged write of a small file fails the check: not committed, nothing left behind, the target untouched', async () => {
    fs.writeFileSync(path.join(src, 'f.txt'), 'the right bytes');
    fs.writeFileSync(path.join(dst, 'f.txt'), 'what B had');
    const before = stat(path.join(dst, 'f.txt'));
    // The write of the temporary file puts one byte wrong.
    const write = fs.writeSync.bind(fs) as (fd: number, buffer: Buffer, offset: number, length: number, position: number) => number;
    vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buffer: Buffer, offset: number, length: number, position: number) => {
      const damaged = Buffer.from(buffer);
      if (damaged.length > 4) damaged[4] = 'X'.charCodeAt(0);
      return write(fd, damaged, offset, length, position);
    }) as typeof fs.writeSync);
    const outcome = await upload('f.txt', before);
    expect(outcome).toEqual({ ok: false, reason: 'error', message: 'integrity check failed for f.txt; not committed' });
    expect(logs).toContain('integrity check failed for f.txt: the written copy differs from the source; retrying');
    expect(fs.readdirSync(dst)).toEqual(['f.txt']);
    expect(fs.readFileSync(path.join(dst, 'f.txt'), 'utf8')).toBe('what B had');

    vi.restoreAllMocks();
    expect(await upload('f.txt', before)).toMatchObject({ ok: true });
    expect(fs.readFileSync(path.join(dst, 'f.txt'), 'utf8')).toBe('the right bytes');
  });

  it('a target edited while the copy runs is kept as a conflict copy, not overwritten', async () => {
    fs.writeFileSync(path.join(src, 'f.txt'), 'the new version');
    fs.writeFileSync(path.join(dst, 'f.txt'), 'the old version');
    const known = stat(path.join(dst, 'f.txt'));
    // B's copy is edited while the source is read.
    const read = fs.read.bind(fs) as (...args: unknown[]) => void;
    vi.spyOn(fs, 'read').mockImplementation(((...args: unknown[]) => {
      const done = args.at(-1) as (err: Error | null, bytesRead: number, buffer: Buffer) => void;
      read(...args.slice(0, -1), (err: Error | null, bytesRead: number, buffer: Buffer) => {
        if (!fs.readFileSync(path.join(dst, 'f.txt'), 'utf8').startsWith('edited')) {
          fs.writeFileSync(path.join(dst, 'f.txt'), 'edited in B meanwhile');
        }
        done(err, bytesRead, buffer);
      });
    }) as unknown as typeof fs.read);
    expect(await upload('f.txt', known)).toMatchObject({ ok: true });
    vi.restoreAllMocks();
    expect(fs.readFileSync(path.join(dst, 'f.txt'), 'utf8')).toBe('the new version');
    const kept = fs.readdirSync(dst).filter((n) => n !== 'f.txt');
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatch(/^f\.sync-conflict-\d{8}-\d{6}-B\.txt$/);
    expect(fs.readFileSync(path.join(dst, kept[0]!), 'utf8')).toBe('edited in B meanwhile');
  });
});
