import type { DriverContext } from '../driver.js';
import { binary, VersionKeeper, keeperContextOf, type VersionStorage } from '../../versions/keeper.js';
import type { VersionPolicy, VersionReason } from '../../versions/policy.js';
import type { RemoteBackend } from './backend.js';

/**
 * The versions of a remote entry, in the `.ferry-versions/` folder of its storage (under the
 * SFTP root, under the S3 prefix; see versions/names.ts), which its listings and polls skip.
 * What a sync overwrites is copied there just before the new content replaces it (SFTP: a hard
 * link; S3: a server-side CopyObject), so the file never goes missing; what a sync deletes is
 * moved there instead (SFTP: a rename; S3: CopyObject, then DeleteObject). The policy and the
 * daemon's record are the keeper's, as for a local root.
 */
export class RemoteVersions implements VersionStorage {
  readonly keeper: VersionKeeper;

  constructor(
    private readonly backend: RemoteBackend,
    policy: VersionPolicy,
    private readonly ctx: DriverContext,
  ) {
    this.keeper = new VersionKeeper(policy, this, keeperContextOf(ctx));
  }

  start(): Promise<void> {
    return this.keeper.start();
  }

  stop(): Promise<void> {
    return this.keeper.stop();
  }

  // ---- VersionStorage ----

  list(): Promise<{ key: string; size: number }[]> {
    return this.backend.listVersions();
  }

  remove(key: string): Promise<void> {
    return this.backend.removeVersion(key);
  }

  // ---- what the jobs call ----

  /**
   * What `rel` holds (`size` bytes), which a sync is about to replace, kept as a version; `rel`
   * stays as it is until the new content replaces it. Throws when it could not be kept: the
   * replacement must then not happen.
   */
  async keepOverwritten(rel: string, size: number): Promise<void> {
    await this.keep(rel, size, 'overwritten', (key) => this.backend.copyToVersion(rel, key));
  }

  /**
   * `rel`, which a sync deletes, moved into the versions folder; false when the policy keeps no
   * version of its size (the caller then deletes it). Throws when it could not be moved: `rel`
   * then stays, and must not be deleted.
   */
  keepDeleted(rel: string, size: number): Promise<boolean> {
    return this.keep(rel, size, 'deleted', (key) => this.backend.moveToVersion(rel, key));
  }

  private async keep(rel: string, size: number, reason: VersionReason, place: (key: string) => Promise<void>): Promise<boolean> {
    if (!this.keeper.fits(size)) {
      this.keeper.skipped(rel, size);
      return false;
    }
    const max = this.backend.versionMax;
    if (max !== undefined && size > max) {
      this.ctx.log('warn', `not kept as a version: ${rel} (${binary(size)}) is larger than ${this.backend.endpoint} copies server-side (${binary(max)})`, {
        path: rel,
        size,
      });
      return false;
    }
    const { key, time } = this.keeper.keyFor(rel, reason);
    try {
      await place(key);
    } catch (err) {
      // A server out of reach is said as such (the driver retries the connection); anything else
      // says what did not happen, and why.
      if (this.backend.connectionError(err) !== null) throw err;
      const why = (err as Error).message ?? String(err);
      throw new Error(`could not keep ${rel} as a version (${why}); not ${reason === 'overwritten' ? 'overwritten' : 'deleted'}`, { cause: err });
    }
    this.keeper.added({ key, filename: rel, time, size, reason });
    return true;
  }
}
