import type fs from 'node:fs';
import { S_IFDIR, S_IFLNK, type FileStat } from '../../../machines/reports.js';

/**
 * The same content and metadata as far as a stat tells: size, modification time and, when both
 * sides know them, the permission bits (a chmod is a change). The inode and ctime are not
 * compared: a copy or a rename changes them without changing the file.
 */
export const sameStat = (a: FileStat, b: FileStat) =>
  a.size === b.size && a.mtime === b.mtime && (a.mode == null || b.mode == null || a.mode === b.mode);

/** As the watcher reports it: a folder with size and mtime 0, a folder or link with its type bits. */
export const statOf = (s: fs.Stats): FileStat =>
  s.isDirectory()
    ? { size: 0, mtime: 0, ino: String(s.ino), mode: (s.mode & 0o7777) | S_IFDIR, ctime: s.ctimeMs }
    : {
        size: s.size,
        mtime: s.mtimeMs,
        ino: String(s.ino),
        mode: (s.mode & 0o7777) | (s.isSymbolicLink() ? S_IFLNK : 0),
        ctime: s.ctimeMs,
      };
