import path from 'node:path';
import type { JobOutcome } from '../../../machines/reports.js';
import type { JobCommand } from '../protocol.js';
import { type Driver, type DriverContext, DriverRefusal } from '../driver.js';
import { LocalTransfers } from './transfers.js';
import { LocalWatcher } from './watcher.js';

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

  constructor(ctx: DriverContext) {
    const root = ctx.options.root;
    if (typeof root !== 'string' || root === '') throw new DriverRefusal('option "root" is missing');
    const absolute = path.resolve(root);
    this.watcher = new LocalWatcher(absolute, ctx);
    this.transfers = new LocalTransfers(absolute, ctx, this.watcher);
  }

  start(): Promise<void> {
    return this.watcher.start();
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
  }
}

export default (ctx: DriverContext) => new LocalStorage(ctx);
