import path from 'node:path';
import type { DriverFactory } from './driver.js';

/** What the daemon knows of a driver without loading it: how to check and resolve its options. */
export interface DriverSpec {
  /** Resolved options, or a reason naming the faulty option. */
  resolveOptions(options: Record<string, unknown>, baseDir: string): { ok: true; value: Record<string, unknown> } | { ok: false; reason: string };
  /** Loads the driver (inside a worker process). */
  load(): Promise<DriverFactory>;
}

export const drivers: Record<string, DriverSpec> = {
  local_storage: {
    resolveOptions(options, baseDir) {
      const root = options.root;
      if (root === undefined) return { ok: false, reason: 'root: missing (the folder this entry keeps)' };
      if (typeof root !== 'string' || root.trim() === '') return { ok: false, reason: 'root: must be a non-empty string' };
      if (root.includes('\0')) return { ok: false, reason: 'root: contains NUL' };
      return { ok: true, value: { ...options, root: path.resolve(baseDir, root) } };
    },
    load: async () => (await import('./local-storage/local-storage.js')).default,
  },
};
