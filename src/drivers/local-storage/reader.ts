import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { FileStat, ScannedFile } from '../../../machines/reports.js';
import type { ReaderFactory, StorageReader } from '../source-reader.js';
import { isInternalName } from '../../paths.js';
import { confined } from './confine.js';
import { statOf } from './stat.js';

/** The read side of a local root: lstat and file streams, every path confined to the root. */
export class LocalReader implements StorageReader {
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  async stat(rel: string) {
    const s = await fsp.lstat(await confined(this.root, rel)).catch(() => null);
    return s && s.isFile() ? statOf(s) : null;
  }

  async open(rel: string, offset: number): Promise<Readable> {
    const file = await confined(this.root, rel);
    // Opened before it is handed out: a missing file fails here, not in the middle of a pipe.
    const handle = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    // Buffers of 1 MiB for a large file, of its size for a small one: a 1 KiB file read with a
    // 1 MiB buffer costs a 1 MiB allocation (thousands of them keep the collector busy).
    const { size } = await handle.stat();
    const highWaterMark = Math.min(1 << 20, Math.max(16 << 10, size - offset));
    return handle.createReadStream({ start: offset, highWaterMark, autoClose: true });
  }

  async read(rel: string, into: Buffer): Promise<{ bytes: number; stat: FileStat } | null> {
    const file = await confined(this.root, rel);
    const handle = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ELOOP') return null;
      throw err;
    });
    if (!handle) return null;
    try {
      const s = await handle.stat();
      if (!s.isFile()) return null;
      let bytes = 0;
      for (;;) {
        const { bytesRead } = await handle.read(into, bytes, into.length - bytes, bytes);
        bytes += bytesRead;
        if (bytesRead === 0 || bytes === into.length) break;
      }
      return { bytes, stat: statOf(s) };
    } finally {
      await handle.close();
    }
  }

  async list(): Promise<ScannedFile[]> {
    const out: ScannedFile[] = [];
    const walk = async (dir: string, rel: string) => {
      for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
        if (isInternalName(e.name)) continue;
        const child = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) await walk(path.join(dir, e.name), child);
        else if (e.isFile()) {
          const s = await fsp.lstat(path.join(dir, e.name)).catch(() => null);
          if (s?.isFile()) out.push({ path: child, ...statOf(s) });
        }
      }
    };
    await walk(this.root, '');
    return out;
  }

  async close(): Promise<void> {}
}

const makeReader: ReaderFactory = (options) => new LocalReader(String(options.root));
export default makeReader;
