import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { resolveInside, UnsafePathError } from '../../paths.js';

/** The real path of each root met: a root is not moved under a running worker. */
const realRoots = new Map<string, string>();

/**
 * The absolute path of `rel` under `root`, refusing any path that leaves the root, directly or
 * through a symlinked folder. `sync`: resolved with synchronous calls (for small files).
 */
export async function confined(root: string, rel: string, sync = false): Promise<string> {
  const absolute = resolveInside(root, rel);
  let realRoot = realRoots.get(root);
  if (realRoot === undefined) {
    realRoot = await fsp.realpath(root);
    realRoots.set(root, realRoot);
  }
  const realpath = (dir: string): string | null | Promise<string | null> => {
    if (!sync) return fsp.realpath(dir).catch(() => null);
    try {
      return fs.realpathSync.native(dir);
    } catch {
      return null;
    }
  };
  for (let dir = path.dirname(absolute); ; dir = path.dirname(dir)) {
    const real = await realpath(dir);
    if (real === null) continue; // not created yet: its nearest existing parent decides
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
      throw new UnsafePathError(rel, 'a folder on the path leads out of the root');
    }
    return absolute;
  }
}

