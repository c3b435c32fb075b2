import { describe, expect, it } from 'vitest';
import { conflictName } from '../src/conflict-name.js';

const WHEN = new Date(Date.UTC(2026, 10, 27, 1, 2, 3));

describe('conflictName', () => {
  it('puts the stamp and the entry before the extension, in the same folder', () => {
    expect(conflictName('dir/report.pdf', 'B', WHEN)).toBe('dir/report.sync-conflict-20261127-010203-B.pdf');
    expect(conflictName('report.pdf', 'B', WHEN)).toBe('report.sync-conflict-20261127-010203-B.pdf');
    expect(conflictName('a/b/c/report.pdf', 'A', WHEN)).toBe('a/b/c/report.sync-conflict-20261127-010203-A.pdf');
  });

  it('handles names without an extension and dotfiles', () => {
    expect(conflictName('README', 'B', WHEN)).toBe('README.sync-conflict-20261127-010203-B');
    expect(conflictName('dir/.bashrc', 'B', WHEN)).toBe('dir/.bashrc.sync-conflict-20261127-010203-B');
    expect(conflictName('.config.json', 'B', WHEN)).toBe('.config.sync-conflict-20261127-010203-B.json');
  });

  it('keeps only the last extension after the stamp', () => {
    expect(conflictName('archive.tar.gz', 'C', WHEN)).toBe('archive.tar.sync-conflict-20261127-010203-C.gz');
  });

  it('writes the time in UTC, zero-padded', () => {
    expect(conflictName('a.txt', 'B', new Date(Date.UTC(2027, 0, 5, 0, 0, 9)))).toBe('a.sync-conflict-20270105-000009-B.txt');
    expect(conflictName('a.txt', 'B', new Date('2026-12-31T23:59:59.999-02:00'))).toBe('a.sync-conflict-20270101-015959-B.txt');
  });

  it('adds a counter for a second conflict in the same second', () => {
    expect(conflictName('dir/report.pdf', 'B', WHEN, 0)).toBe('dir/report.sync-conflict-20261127-010203-B.pdf');
    expect(conflictName('dir/report.pdf', 'B', WHEN, 2)).toBe('dir/report.sync-conflict-20261127-010203-B-2.pdf');
  });
});
