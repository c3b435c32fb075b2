import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isInternalName, resolveInside, unsafeReason, UnsafePathError } from '../src/paths.js';

const ROOT = '/srv/ferry/A';

describe('unsafeReason', () => {
  it('accepts relative paths inside the root', () => {
    for (const ok of ['a', 'a.txt', 'dir/sub/file.pdf', '...', 'a/..b', '.hidden', 'with space/é.txt', 'x'.repeat(255)]) {
      expect(unsafeReason(ok)).toBeNull();
    }
  });

  it('refuses an empty path', () => {
    expect(unsafeReason('')).toBe('empty path');
  });

  it('refuses NUL and backslashes', () => {
    expect(unsafeReason('a\0b')).toBe('path contains NUL');
    expect(unsafeReason('a\\b')).toBe('path contains a backslash');
    expect(unsafeReason('..\\..\\etc')).toBe('path contains a backslash');
  });

  it('refuses absolute paths', () => {
    expect(unsafeReason('/etc/passwd')).toBe('path is absolute');
    expect(unsafeReason('/')).toBe('path is absolute');
  });

  it("refuses '..', '.' and empty segments", () => {
    expect(unsafeReason('..')).toBe('path has a ".." segment');
    expect(unsafeReason('../a')).toBe('path has a ".." segment');
    expect(unsafeReason('a/../../b')).toBe('path has a ".." segment');
    expect(unsafeReason('a/..')).toBe('path has a ".." segment');
    expect(unsafeReason('.')).toBe('path has a "." segment');
    expect(unsafeReason('./a')).toBe('path has a "." segment');
    expect(unsafeReason('a//b')).toBe('path has a "" segment');
    expect(unsafeReason('a/')).toBe('path has a "" segment');
  });

  it('refuses names and paths that are too long, counted in bytes', () => {
    expect(unsafeReason('x'.repeat(256))).toBe('path has a name that is too long');
    expect(unsafeReason('é'.repeat(127))).toBeNull(); // 254 bytes
    expect(unsafeReason('é'.repeat(128))).toBe('path has a name that is too long'); // 256 bytes
    const long = Array.from({ length: 20 }, () => 'y'.repeat(250)).join('/');
    expect(unsafeReason(long)).toBe('path is too long');
    const justFits = Array.from({ length: 16 }, () => 'y'.repeat(255)).join('/'); // 4095 bytes
    expect(unsafeReason(justFits)).toBeNull();
  });
});

describe('resolveInside', () => {
  it('gives the absolute path under the root', () => {
    expect(resolveInside(ROOT, 'a.txt')).toBe(path.join(ROOT, 'a.txt'));
    expect(resolveInside(ROOT, 'dir/sub/b.txt')).toBe(path.join(ROOT, 'dir/sub/b.txt'));
    expect(resolveInside(ROOT + '/', 'a.txt')).toBe(path.join(ROOT, 'a.txt'));
  });

  it('throws on every unsafe path, with the reason', () => {
    for (const [bad, reason] of [
      ['../B/a.txt', 'path has a ".." segment'],
      ['a/../../B', 'path has a ".." segment'],
      ['/etc/passwd', 'path is absolute'],
      ['a\0b', 'path contains NUL'],
      ['..\\B', 'path contains a backslash'],
      ['a//b', 'path has a "" segment'],
      ['', 'empty path'],
      ['n'.repeat(300), 'path has a name that is too long'],
    ] as const) {
      let error: unknown;
      try {
        resolveInside(ROOT, bad);
      } catch (err) {
        error = err;
      }
      expect(error, bad).toBeInstanceOf(UnsafePathError);
      expect((error as UnsafePathError).reason).toBe(reason);
      expect((error as UnsafePathError).filename).toBe(bad);
      expect((error as Error).message).toBe(`refused path ${JSON.stringify(bad)}: ${reason}`);
    }
  });

  it('does not take a sibling folder sharing the prefix for the root', () => {
    // '/srv/ferry/A' + '../AB' is refused for its '..', never resolved to '/srv/ferry/AB'.
    expect(() => resolveInside(ROOT, '../AB/x')).toThrow(UnsafePathError);
  });
});

describe('isInternalName', () => {
  it("knows Ferry's own names", () => {
    expect(isInternalName('.ferry')).toBe(true);
    expect(isInternalName('.ferry-tmp-123')).toBe(true);
    expect(isInternalName('.ferryx')).toBe(false);
    expect(isInternalName('ferry')).toBe(false);
  });
});
