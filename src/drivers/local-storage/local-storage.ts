import path from 'node:path';
import type { JobOutcome } from '../../../machines/reports.js';
import type { JobCommand } from '../protocol.js';
import { type Driver, type DriverContext, DriverRefusal } from '../driver.js';
import { LocalTransfers } from './transfers.js';
import { LocalWatcher } from './watcher.js';
import { LocalVersions } from './versions.js';

export { MARKER } from './watcher.js';
export { RESUMABLE_MIN, SMALL_FILE_MAX } from './transfers.js';
export { confined } from './confine.js';

/**
 * A folder on a local disk: a facade over its watcher (what changes in the root is reported)
 * and its transfers (jobs write into the root). Every path is resolved inside the root.
 */
export class LocalStorage implements Driver {
  private readonly watcher: LocalWatcher;
  private readonly transfers: LocalTransfers;
  /** The content jobs overwrite or delete, kept in the root's .ferry-versions/ (null: "off"). */
  private readonly versions: LocalVersions | null;

  constructor(private readonly ctx: DriverContext) {
    const root = ctx.options.root;
    if (typeof root !== 'string' || root === '') throw new DriverRefusal('option "root" is missing');
    const absolute = path.resolve(root);
    this.watcher = new LocalWatcher(absolute, ctx);
    this.versions = ctx.versions ? new LocalVersions(absolute, ctx.versions, ctx) : null;
    this.transfers = new LocalTransfers(absolute, ctx, this.watcher, this.versions);
  }

  async start(): Promise<void> {
    await this.watcher.start();
    // After the scan: the versions folder is listed only where it exists, and no job runs before
    // the worker says it is ready.
    if (this.versions) await this.versions.start();
    // Versions off: the daemon lists none of this entry's (those kept before stay on disk).
    else this.ctx.versionsChanged?.({ kept: [], dropped: [], full: true });
  }

  /** Puts a version back in place; the watcher reports the file at once, as any change. */
  async restore(key: string): Promise<void> {
    if (!this.versions) throw new Error('versions are off for this entry');
    const rel = this.versions.restore(key);
    this.watcher.lookNow(rel);
  }

  run(job: JobCommand): Promise<JobOutcome> {
    return this.transfers.run(job);
  }

  rescan(): Promise<void> {
    return this.watcher.rescan();
  }

  async stop(): Promise<void> {
    this.transfers.stop();
    await this.watcher.stop();
    await this.versions?.stop();
  }
}

export default (ctx: DriverContext) => new LocalStorage(ctx);
