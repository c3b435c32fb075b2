/**
 * The versions an entry's worker keeps, whatever its storage: the index of what its versions
 * folder holds, the policy applied as versions come (and as they age, on a timer), and the
 * daemon told of each version kept or dropped. A driver provides a `VersionStorage` (how its
 * storage lists and removes a version) and tells the keeper of each version it makes and takes.
 */
import { dropAll, dropForFile, dropOverTotal, nextChange, type KeptVersion, type VersionPolicy, type VersionReason } from './policy.js';
import { parseVersionKey, versionKey } from './names.js';
import type { VersionChange, VersionRecord } from '../../machines/reports.js';
import type { DriverContext } from '../drivers/driver.js';

// What the worker reports of its versions (a VersionRecord is a KeptVersion with its reason).
export type { VersionChange, VersionRecord };

/** How a driver's storage lists and removes versions (keys are paths under its versions folder). */
export interface VersionStorage {
  /** Every file under the versions folder, with its size (none when the folder does not exist). */
  list(): Promise<{ key: string; size: number }[]> | { key: string; size: number }[];
  /** Removes one version, and the folders it leaves empty. */
  remove(key: string): Promise<void> | void;
}

export interface KeeperContext {
  entry: string;
  log(level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>): void;
  /** Told of the versions kept and dropped: the worker sends it to the daemon. */
  changed(change: VersionChange): void;
}

/** A driver's keeper context: its entry and log, and the daemon told of each change. */
export function keeperContextOf(ctx: Pick<DriverContext, 'entry' | 'log' | 'versionsChanged'>): KeeperContext {
  return {
    entry: ctx.entry,
    log: (level, msg, fields) => ctx.log(level, msg, fields),
    changed: (change) => ctx.versionsChanged?.(change),
  };
}

/** A restore asked for a version the storage does not hold. */
export class VersionMissing extends Error {
  constructor(key: string) {
    super(`no version ${key}`);
    this.name = 'VersionMissing';
  }
}

/** setTimeout's longest delay is 24.8 days: a later change is looked at again within an hour. */
const MAX_TIMER_MS = 3_600_000;

/** A size as the log says it: `1.0 GiB`, `12.0 MiB`, `512 B`. */
export const binary = (n: number) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
};

export class VersionKeeper {
  private readonly byKey = new Map<string, VersionRecord>();
  private readonly byFile = new Map<string, Set<string>>();
  private total = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Removals run one after another: the index is what the storage holds once they are done. */
  private work: Promise<void> = Promise.resolve();

  constructor(
    readonly policy: VersionPolicy,
    private readonly storage: VersionStorage,
    private readonly ctx: KeeperContext,
    private readonly now: () => number = Date.now,
  ) {}

  /** Lists the storage's versions, drops what the policy no longer keeps, and tells the daemon of every one. */
  async start(): Promise<void> {
    for (const { key, size } of await this.storage.list()) {
      const parsed = parseVersionKey(key);
      if (parsed) this.index({ key, filename: parsed.filename, time: parsed.time, reason: parsed.reason, size });
    }
    const { expired, overTotal } = dropAll([...this.byKey.values()], this.policy, this.now());
    // What is dropped now is not told apart: the full list that follows leaves it out.
    await this.removeAll([...expired, ...overTotal]);
    this.logDrops(expired.length, overTotal);
    this.ctx.changed({ kept: [...this.byKey.values()], dropped: [], full: true });
    this.schedule();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    return this.work;
  }

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): VersionRecord | undefined {
    return this.byKey.get(key);
  }

  /** A key for a new version of `filename` kept now, that no version holds, and its time. */
  keyFor(filename: string, reason: VersionReason, taken: (key: string) => boolean = () => false): { key: string; time: number } {
    const time = this.now();
    for (let n = 0; ; n++) {
      const key = versionKey(filename, time, reason, n);
      if (!this.byKey.has(key) && !taken(key)) return { key, time };
    }
  }

  /** Whether a version of `size` bytes may be kept: one larger than max_total never is. */
  fits(size: number): boolean {
    return this.policy.maxTotal === null || size <= this.policy.maxTotal;
  }

  /** A version not kept because it alone is larger than max_total: said in the log. */
  skipped(filename: string, size: number): void {
    this.ctx.log('warn', `not kept as a version: ${filename} (${binary(size)}) is larger than max_total (${binary(this.policy.maxTotal ?? 0)})`, {
      path: filename,
      size,
    });
  }

  /**
   * The storage holds a new version: the daemon is told at once, then the policy is applied to
   * its file and to the entry's total (what it drops is removed, and told, once removed).
   */
  added(version: VersionRecord): void {
    this.index(version);
    this.ctx.changed({ kept: [version], dropped: [] });
    const { filename } = version;
    this.enqueue(async () => {
      const forFile = dropForFile(this.versionsOf(filename), this.policy, this.now());
      const gone = new Set(forFile.map((v) => v.key));
      const left = this.total - forFile.reduce((n, v) => n + v.size, 0);
      const overTotal =
        this.policy.maxTotal !== null && left > this.policy.maxTotal
          ? dropOverTotal([...this.byKey.values()].filter((v) => !gone.has(v.key)), this.policy)
          : [];
      const dropped = await this.removeAll([...forFile, ...overTotal]);
      if (dropped.length > 0) this.ctx.changed({ kept: [], dropped });
      this.logDrops(forFile.length, overTotal);
    });
    this.schedule();
  }

  /** A version that left the storage (restored into place): forgotten, and the daemon told. */
  taken(key: string): void {
    if (!this.unindex(key)) return;
    this.ctx.changed({ kept: [], dropped: [key] });
  }

  /** Applies the policy to every version now (on the timer). */
  prune(): Promise<void> {
    this.enqueue(async () => {
      const { expired, overTotal } = dropAll([...this.byKey.values()], this.policy, this.now());
      const dropped = await this.removeAll([...expired, ...overTotal]);
      if (dropped.length > 0) this.ctx.changed({ kept: [], dropped });
      this.logDrops(expired.length, overTotal);
    });
    return this.work.then(() => this.schedule());
  }

  private versionsOf(filename: string): VersionRecord[] {
    return [...(this.byFile.get(filename) ?? [])].map((k) => this.byKey.get(k)!);
  }

  private enqueue(task: () => Promise<void>): void {
    this.work = this.work.then(task).catch((err: unknown) => {
      this.ctx.log('warn', `versions: ${(err as Error).message}`);
    });
  }

  /** Removes versions from the storage and the index; returns the keys removed. */
  private async removeAll(versions: readonly KeptVersion[]): Promise<string[]> {
    const removed: string[] = [];
    for (const v of versions) {
      if (!this.byKey.has(v.key)) continue;
      try {
        await this.storage.remove(v.key);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.ctx.log('warn', `could not remove the version ${v.key}: ${(err as Error).message}`);
          continue;
        }
      }
      this.unindex(v.key);
      removed.push(v.key);
    }
    return removed;
  }

  private logDrops(expired: number, overTotal: readonly KeptVersion[]): void {
    if (expired > 0) this.ctx.log('debug', `dropped ${expired} version${expired === 1 ? '' : 's'} the policy no longer keeps`, { dropped: expired });
    if (overTotal.length > 0) {
      const bytes = overTotal.reduce((n, v) => n + v.size, 0);
      this.ctx.log(
        'info',
        `versions of ${this.ctx.entry} over max_total (${binary(this.policy.maxTotal!)}): dropped the ${overTotal.length} oldest (${binary(bytes)})`,
        { dropped: overTotal.length, bytes, max_total: this.policy.maxTotal },
      );
    }
  }

  private index(v: VersionRecord): void {
    if (this.byKey.has(v.key)) this.unindex(v.key);
    this.byKey.set(v.key, v);
    let keys = this.byFile.get(v.filename);
    if (!keys) this.byFile.set(v.filename, (keys = new Set()));
    keys.add(v.key);
    this.total += v.size;
  }

  private unindex(key: string): VersionRecord | undefined {
    const v = this.byKey.get(key);
    if (!v) return undefined;
    this.byKey.delete(key);
    const keys = this.byFile.get(v.filename);
    keys?.delete(key);
    if (keys?.size === 0) this.byFile.delete(v.filename);
    this.total -= v.size;
    return v;
  }

  /** The timer: the next time a version ages out of the policy's bounds. */
  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const at = nextChange([...this.byKey.values()], this.policy, this.now());
    if (at === null) return;
    this.timer = setTimeout(() => void this.prune(), Math.min(MAX_TIMER_MS, Math.max(10, at - this.now())));
    this.timer.unref();
  }
}
