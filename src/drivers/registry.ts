import path from 'node:path';
import type { DriverFactory } from './driver.js';
import { unknownName } from '../did-you-mean.js';

type Resolved = { ok: true; value: Record<string, unknown> } | { ok: false; reason: string };

/** What the daemon knows of a driver without loading it: how to check and resolve its options. */
export interface DriverSpec {
  /** The option names this driver knows; any other is refused. */
  readonly options: readonly string[];
  /**
   * Resolved options (every option present, defaults filled in), or a reason that starts with
   * the faulty option's name (`settle_ms: must be …`).
   */
  resolveOptions(options: Record<string, unknown>, baseDir: string): Resolved;
  /** The local folder an entry of this driver keeps, from its resolved options; none for a remote one. */
  folder?(resolved: Record<string, unknown>): string;
  /** Loads the driver (inside a worker process). */
  load(): Promise<DriverFactory>;
}

/** The local_storage options' defaults. */
export const LOCAL_STORAGE_DEFAULTS = {
  /** Milliseconds a file's events must have settled before it is looked at again. */
  settle_ms: 2,
  /** Seconds between two full rescans of the root (the kernel can drop events silently). */
  rescan_interval: 3600,
  /** Seconds between two rescans of the folders the kernel refused to watch. */
  poll_interval: 30,
} as const;

/** Refuses an option not in `known`, naming a close known one. */
function unknownOption(options: Record<string, unknown>, known: readonly string[]): Resolved | null {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) return { ok: false, reason: `${key}: ${unknownName(key, known, 'option')}` };
  }
  return null;
}

const LOCAL_STORAGE_OPTIONS = ['root', 'settle_ms', 'rescan_interval', 'poll_interval'] as const;

export const drivers: Record<string, DriverSpec> = {
  local_storage: {
    options: LOCAL_STORAGE_OPTIONS,
    resolveOptions(options, baseDir) {
      const unknown = unknownOption(options, LOCAL_STORAGE_OPTIONS);
      if (unknown) return unknown;
      const root = options.root;
      if (root === undefined) return { ok: false, reason: 'root: missing (the folder this entry keeps)' };
      if (typeof root !== 'string' || root.trim() === '') return { ok: false, reason: 'root: must be a non-empty string' };
      if (root.includes('\0')) return { ok: false, reason: 'root: contains NUL' };
      const settle = options.settle_ms === undefined ? LOCAL_STORAGE_DEFAULTS.settle_ms : options.settle_ms;
      if (typeof settle !== 'number' || !Number.isInteger(settle) || settle < 0) {
        return { ok: false, reason: 'settle_ms: must be a whole number of milliseconds, 0 or more' };
      }
      const seconds: Record<string, number> = {};
      for (const key of ['rescan_interval', 'poll_interval'] as const) {
        const value = options[key] === undefined ? LOCAL_STORAGE_DEFAULTS[key] : options[key];
        if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
          return { ok: false, reason: `${key}: must be a number of seconds greater than 0` };
        }
        seconds[key] = value;
      }
      return { ok: true, value: { root: path.resolve(baseDir, root), settle_ms: settle, ...seconds } };
    },
    folder: (resolved) => resolved.root as string,
    load: async () => (await import('./local-storage/local-storage.js')).default,
  },
};
