import fs from 'node:fs';
import path from 'node:path';
import { resolveInside, UnsafePathError } from '../../paths.js';
import type { DriverContext } from '../driver.js';
import { VERSIONS_FOLDER } from '../../versions/names.js';
import { VersionKeeper, keeperContextOf, VersionMissing, type VersionStorage } from '../../versions/keeper.js';
import type { VersionPolicy, VersionReason } from '../../versions/policy.js';

/**
 * The versions of a local root, in its `.ferry-versions/` folder (see versions/names.ts). A
 * version costs no copy: the old content of a file a sync overwrites gets a second name there (a
 * hard link) before the new content is renamed over it, and a file a sync deletes is renamed
 * there instead. Only across file systems (a mount inside the root) or without hard links is it
 * copied. The policy and the daemon's record are the keeper's.
 */
export class LocalVersions implements VersionStorage {
  readonly folder: string;
  readonly keeper: VersionKeeper;
  private realFolder: string | null = null;

  constructor(
    private readonly root: string,
    policy: VersionPolicy,
    ctx: DriverContext,
  ) {
    this.folder = path.join(root, VERSIONS_FOLDER);
    this.keeper = new VersionKeeper(policy, this, keeperContextOf(ctx));
  }

  start(): Promise<void> {
    return this.keeper.start();
  }

  stop(): Promise<void> {
    return this.keeper.stop();
  }

  // ---- VersionStorage ----

  /** Every file under the versions folder (walked only when it exists: a root that never lost content pays nothing). */
  list(): { key: string; size: number }[] {
    const found: { key: string; size: number }[] = [];
    const walk = (dir: string, prefix: string) => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const key = prefix === '' ? e.name : `${prefix}/${e.name}`;
        if (e.isDirectory()) walk(path.join(dir, e.name), key);
        else if (e.isFile()) {
          try {
            found.push({ key, size: fs.lstatSync(path.join(dir, e.name)).size });
          } catch {
            // gone meanwhile
          }
        }
      }
    };
    walk(this.folder, '');
    return found;
  }

  remove(key: string): void {
    const file = this.pathOf(key);
    fs.unlinkSync(file);
    this.removeEmptyParents(file);
  }

  // ---- what the transfers call ----

  /**
   * The content of `rel` (a regular file of `size` bytes at `absolute`), which a sync is about to
   * replace, kept as a version: a hard link, so that the rename over `rel` that follows leaves the
   * old content under the version's name alone. Throws when it cannot be kept (the replacement
   * must then not happen).
   */
  keepOverwritten(rel: string, absolute: string, size: number): void {
    this.keep(rel, absolute, size, 'overwritten', (to) => {
      try {
        fs.linkSync(absolute, to);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Another file system, or one without hard links: a copy.
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw err;
        fs.copyFileSync(absolute, to, fs.constants.COPYFILE_EXCL);
      }
    });
  }

  /** `rel`, which a sync deletes, moved into the versions folder instead (a rename); unlinked when it may not be kept. */
  keepDeleted(rel: string, absolute: string, size: number): void {
    const kept = this.keep(rel, absolute, size, 'deleted', (to) => {
      try {
        fs.renameSync(absolute, to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        fs.copyFileSync(absolute, to, fs.constants.COPYFILE_EXCL);
        fs.unlinkSync(absolute);
      }
    });
    if (!kept) fs.unlinkSync(absolute);
  }

  /**
   * Puts the version `key` back at its file's path as a new change (its mtime now, so that it is
   * the newest version everywhere); what the path holds is kept as a version first. Returns the
   * file's path.
   */
  restore(key: string): string {
    const version = this.keeper.get(key);
    if (!version) throw new VersionMissing(key);
    const source = this.pathOf(key);
    const held = lstatOrNull(source);
    if (!held?.isFile()) {
      this.keeper.taken(key);
      throw new VersionMissing(key);
    }
    const target = resolveInside(this.root, version.filename);
    const current = lstatOrNull(target);
    if (current && !current.isFile()) {
      throw new Error(`${version.filename} is now ${current.isDirectory() ? 'a folder' : 'not a regular file'}; not restored over it`);
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    this.checkInsideRoot(path.dirname(target), version.filename);
    const now = Date.now() / 1000;
    fs.utimesSync(source, now, now);
    if (current) this.keepOverwritten(version.filename, target, current.size);
    fs.renameSync(source, target);
    this.removeEmptyParents(source);
    this.keeper.taken(key);
    return version.filename;
  }

  // ---- inside ----

  /** Places a version of `rel` with `place`; false when the policy keeps none of its size. */
  private keep(rel: string, absolute: string, size: number, reason: VersionReason, place: (to: string) => void): boolean {
    if (!this.keeper.fits(size)) {
      this.keeper.skipped(rel, size);
      return false;
    }
    const { key, time } = this.keeper.keyFor(rel, reason, (k) => fs.existsSync(this.pathOf(k)));
    const to = this.pathOf(key);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    // A folder of the versions replaced by a link out of the root is never written through.
    this.checkInsideVersions(path.dirname(to), rel);
    place(to);
    this.keeper.added({ key, filename: rel, time, size, reason });
    return true;
  }

  /** The absolute path of a version key, refused when it would leave the versions folder. */
  private pathOf(key: string): string {
    return resolveInside(this.folder, key);
  }

  private checkInsideVersions(dir: string, rel: string): void {
    if (this.realFolder === null) {
      const real = fs.realpathSync.native(this.folder);
      // The folder itself a link elsewhere: never followed.
      if (real !== path.join(fs.realpathSync.native(this.root), VERSIONS_FOLDER)) {
        throw new UnsafePathError(rel, `${VERSIONS_FOLDER} leads out of the root`);
      }
      this.realFolder = real;
    }
    const real = fs.realpathSync.native(dir);
    if (real !== this.realFolder && !real.startsWith(this.realFolder + path.sep)) {
      throw new UnsafePathError(rel, `a folder of ${VERSIONS_FOLDER} leads out of it`);
    }
  }

  private checkInsideRoot(dir: string, rel: string): void {
    const realRoot = fs.realpathSync.native(this.root);
    const real = fs.realpathSync.native(dir);
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw new UnsafePathError(rel, 'a folder on the path leads out of the root');
  }

  /** The folders a removed version leaves empty, up to (not including) the versions folder. */
  private removeEmptyParents(file: string): void {
    for (let dir = path.dirname(file); dir !== this.folder && dir.startsWith(this.folder + path.sep); dir = path.dirname(dir)) {
      try {
        fs.rmdirSync(dir);
      } catch {
        return; // not empty
      }
    }
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}
