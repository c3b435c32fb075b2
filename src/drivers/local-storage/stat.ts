import type fs from 'node:fs';
import type { FileStat } from '../../../machines/reports.js';

export const sameStat = (a: FileStat, b: FileStat) => a.size === b.size && a.mtime === b.mtime;
export const statOf = (s: fs.Stats): FileStat => ({ size: s.size, mtime: s.mtimeMs, ino: String(s.ino) });
