import type fs from 'node:fs';
import { S_IFDIR, S_IFLNK, type FileStat } from '../../../machines/reports.js';

/** What the watcher knows of one file: a few numbers, no path (its folder holds the name). */
export interface FileRec {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  /** Permission bits (st_mode & 0o7777), with S_IFDIR or S_IFLNK for a folder or a link. */
  mode: number;
  /** For a symbolic link: where it points (as written). */
  target?: string;
}

/** The record of a regular file, or of a symbolic link pointing at `target`. */
export const recOf = (s: fs.Stats, target?: string): FileRec => ({
  size: s.size,
  mtime: s.mtimeMs,
  ctime: s.ctimeMs,
  ino: s.ino,
  mode: (s.mode & 0o7777) | (target !== undefined ? S_IFLNK : 0),
  ...(target !== undefined ? { target } : {}),
});

/** The record of a folder: its size and mtime say nothing of it (its children change them). */
export const folderRecOf = (s: fs.Stats): FileRec => ({ size: 0, mtime: 0, ctime: s.ctimeMs, ino: s.ino, mode: (s.mode & 0o7777) | S_IFDIR });

export const statOfRec = (r: FileRec): FileStat => ({
  size: r.size,
  mtime: r.mtime,
  ino: String(r.ino),
  ctime: r.ctime,
  mode: r.mode,
});

/** A folder's record is a stat like any other: its mode says what it is. */
export const statOfFolder = statOfRec;

/** Same content and permissions, as far as a stat tells (inode and ctime aside). */
export const sameContent = (a: FileRec, b: FileRec) =>
  a.size === b.size && a.mtime === b.mtime && a.mode === b.mode && a.target === b.target;

interface Folder {
  /** The folder's own record (null for the root, or until it is known). */
  rec: FileRec | null;
  files: Map<string, FileRec>;
  folders: Set<string>;
}

/** A relative path's folder ('' at the top) and name. */
export const split = (rel: string): [string, string] => {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? ['', rel] : [rel.slice(0, slash), rel.slice(slash + 1)];
};

/**
 * The folders of a root and the files in each, by relative path ('' is the root). Each file's
 * name is held once, by its folder: memory grows with the tree by a name and five numbers a file.
 */
export class FolderTree {
  private readonly folders = new Map<string, Folder>();
  private files = 0;

  get fileCount(): number {
    return this.files;
  }

  get folderCount(): number {
    return this.folders.size;
  }

  hasFolder(rel: string): boolean {
    return this.folders.has(rel);
  }

  addFolder(rel: string, rec: FileRec | null = null): void {
    const existing = this.folders.get(rel);
    if (existing) {
      if (rec) existing.rec = rec;
      return;
    }
    this.folders.set(rel, { rec, files: new Map(), folders: new Set() });
    if (rel === '') return;
    const [dir, name] = split(rel);
    this.addFolder(dir);
    this.folders.get(dir)!.folders.add(name);
  }

  folderRec(rel: string): FileRec | null {
    return this.folders.get(rel)?.rec ?? null;
  }

  getFile(rel: string): FileRec | undefined {
    const [dir, name] = split(rel);
    return this.folders.get(dir)?.files.get(name);
  }

  setFile(rel: string, rec: FileRec): void {
    const [dir, name] = split(rel);
    this.addFolder(dir);
    const files = this.folders.get(dir)!.files;
    if (!files.has(name)) this.files++;
    files.set(name, rec);
  }

  deleteFile(rel: string): void {
    const [dir, name] = split(rel);
    if (this.folders.get(dir)?.files.delete(name)) this.files--;
  }

  /** The names of a folder's files and subfolders. */
  childNames(rel: string): string[] {
    const folder = this.folders.get(rel);
    return folder ? [...folder.files.keys(), ...folder.folders] : [];
  }

  /** Forgets a folder and everything under it; returns what it held. */
  removeFolder(rel: string): { folders: [string, FileRec | null][]; files: [string, FileRec][] } {
    const removed = { folders: [] as [string, FileRec | null][], files: [] as [string, FileRec][] };
    if (rel === '' || !this.folders.has(rel)) return removed;
    const [dir, name] = split(rel);
    this.folders.get(dir)?.folders.delete(name);
    const queue = [rel];
    while (queue.length > 0) {
      const current = queue.pop()!;
      const folder = this.folders.get(current);
      if (!folder) continue;
      this.folders.delete(current);
      removed.folders.push([current, folder.rec]);
      for (const [n, rec] of folder.files) removed.files.push([current === '' ? n : `${current}/${n}`, rec]);
      this.files -= folder.files.size;
      for (const sub of folder.folders) queue.push(`${current}/${sub}`);
    }
    return removed;
  }

  /** Every folder but the root, as [relative path, record]. */
  *allFolders(): Generator<[string, FileRec | null]> {
    for (const [rel, folder] of this.folders) if (rel !== '') yield [rel, folder.rec];
  }

  /** Every folder (the root as ''), with its files and its subfolders' records by name. */
  *listings(): Generator<[string, ReadonlyMap<string, FileRec>, [string, FileRec | null][]]> {
    for (const [rel, folder] of this.folders) {
      const subfolders: [string, FileRec | null][] = [];
      for (const name of folder.folders) subfolders.push([name, this.folders.get(rel === '' ? name : `${rel}/${name}`)?.rec ?? null]);
      yield [rel, folder.files, subfolders];
    }
  }

  /** Every file, as [relative path, record]. */
  *allFiles(): Generator<[string, FileRec]> {
    for (const [dir, folder] of this.folders) {
      for (const [name, rec] of folder.files) yield [dir === '' ? name : `${dir}/${name}`, rec];
    }
  }
}
