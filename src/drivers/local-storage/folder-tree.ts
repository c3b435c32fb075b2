import type fs from 'node:fs';
import type { FileStat } from '../../../machines/reports.js';

/** What the watcher knows of one file: a few numbers, no path (its folder holds the name). */
export interface FileRec {
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  /** Permission bits (st_mode & 0o7777). */
  mode: number;
}

export const recOf = (s: fs.Stats): FileRec => ({
  size: s.size,
  mtime: s.mtimeMs,
  ctime: s.ctimeMs,
  ino: s.ino,
  mode: s.mode & 0o7777,
});

export const statOfRec = (r: FileRec): FileStat => ({
  size: r.size,
  mtime: r.mtime,
  ino: String(r.ino),
  ctime: r.ctime,
  mode: r.mode,
});

/** Same content and permissions, as far as a stat tells (inode and ctime aside). */
export const sameContent = (a: FileRec, b: FileRec) => a.size === b.size && a.mtime === b.mtime && a.mode === b.mode;

interface Folder {
  files: Map<string, FileRec>;
  folders: Set<string>;
}

const split = (rel: string): [string, string] => {
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

  addFolder(rel: string): void {
    if (this.folders.has(rel)) return;
    this.folders.set(rel, { files: new Map(), folders: new Set() });
    if (rel === '') return;
    const [dir, name] = split(rel);
    this.addFolder(dir);
    this.folders.get(dir)!.folders.add(name);
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
  removeFolder(rel: string): { folders: string[]; files: [string, FileRec][] } {
    const removed = { folders: [] as string[], files: [] as [string, FileRec][] };
    if (rel === '' || !this.folders.has(rel)) return removed;
    const [dir, name] = split(rel);
    this.folders.get(dir)?.folders.delete(name);
    const queue = [rel];
    while (queue.length > 0) {
      const current = queue.pop()!;
      const folder = this.folders.get(current);
      if (!folder) continue;
      this.folders.delete(current);
      removed.folders.push(current);
      for (const [n, rec] of folder.files) removed.files.push([current === '' ? n : `${current}/${n}`, rec]);
      this.files -= folder.files.size;
      for (const sub of folder.folders) queue.push(`${current}/${sub}`);
    }
    return removed;
  }

  /** Every file, as [relative path, record]. */
  *allFiles(): Generator<[string, FileRec]> {
    for (const [dir, folder] of this.folders) {
      for (const [name, rec] of folder.files) yield [dir === '' ? name : `${dir}/${name}`, rec];
    }
  }
}
