import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isFolderStat, isLinkStat, type FileStat, type JobOutcome } from '../../../machines/reports.js';
import type { JobCommand } from '../protocol.js';
import { type Driver, type DriverContext, DriverRefusal, StaleJob } from '../driver.js';
import { conflictName } from '../../conflict-name.js';
import { INTERNAL_PREFIX, UnsafePathError, unsafeReason } from '../../paths.js';
import { sourceReader, type StorageReader } from '../source-reader.js';
import { type CopyLimits, FOLDER_STAT, type RemoteBackend, type RemoteStat, TargetExists, type UploadPlan } from './backend.js';
import { ListingPoller, plain } from './poller.js';
import { readInto } from './read-all.js';
import { RemoteVersions } from './versions.js';
import { VersionMissing } from '../../versions/keeper.js';

/** The marker each remote root gets on first use (as a local root does). */
export const MARKER = `${INTERNAL_PREFIX}entry`;
/** Partial copies older than this are removed at start (and their uploads aborted). */
const PARTIAL_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** How often a copy reports its progress, and from what size. */
const PROGRESS_MS = 250;
const PROGRESS_MIN = 8 << 20;
/** Copies up to this size may read their source whole (the backends' single requests); larger ones stream it. */
const READ_WHOLE_MAX = 8 << 20;
/** Delays between two attempts to reach the server: 1 s, 2 s, 4 s … at most 60 s. */
export const reconnectDelay = (attempt: number) => Math.min(60, 2 ** Math.max(0, attempt - 1));

const sameStat = (a: FileStat, b: FileStat) => a.size === b.size && a.mtime === b.mtime;

/** Errors of the source's storage carry this mark, so that they never count as our server's faults. */
const FROM_SOURCE = Symbol('ferry.fromSource');

function fromSource<T>(promise: Promise<T>): Promise<T> {
  return promise.catch((err: unknown) => {
    if (err && typeof err === 'object') (err as Record<symbol, unknown>)[FROM_SOURCE] = true;
    throw err;
  });
}

/**
 * A remote storage as a driver: the backend does the storage's operations; this class keeps
 * the connection state (retried with back-off, told to the daemon), polls the listing for
 * changes, and runs jobs with the same rules as local_storage (stale checks, conflict copies,
 * nothing partial under a final name).
 */
export class RemoteDriver implements Driver {
  private readonly poller: ListingPoller;
  private connected = false;
  private scanned = false;
  private live = false;
  private attempt = 0;
  private reason: string | null = null;
  private lastState = '';
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private readonly copies = new Set<AbortController>();
  private readonly slots: CopySlots;
  /** The content jobs overwrite or delete, kept in the storage's .ferry-versions/ (null: "off"). */
  private readonly versions: RemoteVersions | null;
  /** Whether the versions were listed and told to the daemon (once, after the first scan). */
  private versionsStarted = false;

  constructor(
    private readonly ctx: DriverContext,
    private readonly backend: RemoteBackend,
    private readonly pollMs: number,
  ) {
    this.poller = new ListingPoller(ctx.entry, ctx.report, backend.renameKeepsMtime);
    this.slots = new CopySlots(backend.copyLimits);
    this.versions = ctx.versions ? new RemoteVersions(backend, ctx.versions, ctx) : null;
    backend.onFolderMade = (rel, stat) => {
      this.poller.begin(rel);
      this.poller.settle(rel, stat);
    };
  }

  async start(): Promise<void> {
    this.live = true;
    try {
      await this.backend.connect();
      await this.firstScan();
    } catch (err) {
      // The storage must not be used as it is (a host key that changed, no root, another
      // storage than the store knows): the entry refuses to start.
      if (err instanceof DriverRefusal) throw err;
      // Not reached: the entry runs all the same, says why in its status, and keeps trying.
      this.lost(err);
      return;
    }
    this.up();
  }

  async stop(): Promise<void> {
    this.live = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    for (const c of this.copies) c.abort();
    await this.versions?.stop();
    await this.backend.close();
  }

  /** A poll now, its differences reported before it resolves. */
  async rescan(): Promise<void> {
    await this.poll();
  }

  /**
   * Puts the version `key` back in place as a new change (its mtime now): what the path holds is
   * kept as a version first, then the version replaces it in one step (SFTP: a rename; S3:
   * CopyObject, then the version's DeleteObject). The file, and the folders made for it, are
   * reported before this resolves.
   */
  async restore(key: string): Promise<void> {
    const versions = this.versions;
    if (!versions) throw new Error('versions are off for this entry');
    if (!this.connected) throw new Error(this.reason ?? `${this.backend.endpoint}: not connected`);
    const version = versions.keeper.get(key);
    if (!version) throw new VersionMissing(key);
    const rel = version.filename;
    try {
      if ((await this.backend.versionSize(key)) === null) {
        // Gone from the storage behind Ferry's back: forgotten.
        versions.keeper.taken(key);
        throw new VersionMissing(key);
      }
      const made = await this.makeParents(rel);
      this.poller.begin(rel);
      let final: RemoteStat | undefined;
      try {
        const current = await this.backend.stat(rel);
        if (current && isFolderStat(current)) throw new Error(`${rel} is now a folder; not restored over it`);
        if (current) await versions.keepOverwritten(rel, current.size);
        final = await this.backend.restoreVersion(key, rel, current);
        versions.keeper.taken(key);
      } finally {
        this.poller.settle(rel, final);
      }
      for (const folder of made) this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: folder, stat: plain(FOLDER_STAT) });
      this.ctx.report({ type: 'file.changed', entry: this.ctx.entry, path: rel, stat: plain(final) });
    } catch (err) {
      if (err instanceof VersionMissing) throw err;
      const down = this.backend.connectionError(err);
      if (down === null) throw err;
      if (this.connected) this.lost(err);
      throw new Error(`${this.backend.endpoint}: ${down}`, { cause: err });
    }
  }

  /** The folders on the way to `rel` that the storage does not hold, made (top first) and returned. */
  private async makeParents(rel: string): Promise<string[]> {
    const made: string[] = [];
    const parts = rel.split('/').slice(0, -1);
    let missing = false;
    for (let i = 1; i <= parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      // Below a folder that was missing, none is there.
      if (!missing && (await this.backend.folderStat(folder))) continue;
      missing = true;
      await this.makeFolder(folder);
      made.push(folder);
    }
    return made;
  }

  async run(job: JobCommand): Promise<JobOutcome> {
    try {
      if (!this.connected) throw new Error(this.reason ?? `${this.backend.endpoint}: not connected`);
      for (const p of job.kind === 'move' ? [job.from, job.path] : [job.path]) {
        const unsafe = unsafeReason(p);
        if (unsafe) throw new UnsafePathError(p, unsafe);
      }
      switch (job.kind) {
        case 'upload':
          return { ok: true, stat: plain(await this.upload(job)) };
        case 'delete':
          await this.remove(job.path, job.expect);
          return { ok: true, stat: null };
        case 'move':
          return { ok: true, stat: plain(await this.move(job.from, job.path, job.expect)) };
      }
    } catch (err) {
      if (err instanceof StaleJob) return { ok: false, reason: 'stale', message: err.message };
      const ours = !(err as Record<symbol, unknown>)?.[FROM_SOURCE];
      const down = ours ? this.backend.connectionError(err) : null;
      if (down !== null && this.connected) this.lost(err);
      const message = down !== null ? `${this.backend.endpoint}: ${down}` : ((err as Error).message ?? String(err));
      return { ok: false, reason: 'error', message };
    }
  }

  // ---- connection ----

  private up(): void {
    this.connected = true;
    this.attempt = 0;
    this.reason = null;
    this.tell();
    if (!this.pollTimer && this.pollMs > 0) {
      this.pollTimer = setInterval(() => void this.poll(), this.pollMs);
      this.pollTimer.unref();
    }
  }

  /** The server is not reached: said in the status, tried again after a growing delay. */
  private lost(err: unknown): void {
    if (!this.live) return;
    this.connected = false;
    this.attempt++;
    const delay = reconnectDelay(this.attempt);
    const why = this.backend.connectionError(err) ?? (err as Error).message ?? String(err);
    const reason = `${this.backend.endpoint}: ${why}; retrying in ${delay} s`;
    if (reason !== this.reason) this.ctx.log('warn', reason);
    this.reason = reason;
    this.tell();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.reconnect(), delay * 1000);
    this.reconnectTimer.unref();
  }

  private async reconnect(): Promise<void> {
    this.reconnectTimer = null;
    if (!this.live) return;
    try {
      await this.backend.connect();
      if (!this.scanned) await this.firstScan();
      else await this.startVersions();
    } catch (err) {
      this.lost(err);
      return;
    }
    this.ctx.log('info', `${this.backend.endpoint}: connected`);
    this.up();
    // What changed while the server was out of reach is reported at once.
    if (this.scanned) void this.poll();
  }

  private tell(): void {
    const state = { endpoint: this.backend.endpoint, connected: this.connected, reason: this.reason };
    const key = JSON.stringify(state);
    if (key === this.lastState) return;
    this.lastState = key;
    this.ctx.connection?.(state);
  }

  // ---- change detection ----

  private async firstScan(): Promise<void> {
    const listing = await this.backend.listing();
    const marker = listing.internal.some((i) => i.rel === MARKER);
    if (!marker && this.ctx.knownFiles > 0) {
      throw new DriverRefusal(
        `${this.backend.endpoint} holds no ${MARKER} marker but the store says this entry held ${this.ctx.knownFiles} files; ` +
          'refusing to start so that nothing is deleted elsewhere (is it the right server, root or bucket?)',
      );
    }
    if (!marker) await this.backend.writeMarker();
    const now = Date.now();
    for (const { rel, mtime } of listing.internal) {
      const name = rel.slice(rel.lastIndexOf('/') + 1);
      // Temporaries of copies a crash interrupted go; partial copies are kept for a resume, unless old.
      const stale =
        name.startsWith(`${INTERNAL_PREFIX}tmp-`) || (name.startsWith(`${INTERNAL_PREFIX}part-`) && now - mtime > PARTIAL_MAX_AGE_MS);
      if (stale) await this.backend.removeInternal(rel).catch((err: Error) => this.ctx.log('warn', `could not remove ${rel}: ${err.message}`));
    }
    const swept = await this.backend.sweep?.().catch((err: Error) => {
      this.ctx.log('warn', `${this.backend.endpoint}: could not look for abandoned uploads: ${err.message}`);
      return 0;
    });
    if (swept) this.ctx.log('info', `${this.backend.endpoint}: aborted ${swept} abandoned multipart upload(s)`);
    this.scanned = true;
    this.poller.scan(listing.files);
    await this.startVersions();
  }

  /**
   * After the first scan: the versions the storage holds are listed (the policy applied to them)
   * and told to the daemon. No job runs before (the entry is not connected until then); when the
   * server is lost meanwhile, the next connection does it.
   */
  private async startVersions(): Promise<void> {
    if (this.versionsStarted) return;
    if (this.versions) await this.versions.start();
    // Versions off: the daemon lists none of this entry's (those kept before stay on the storage).
    else this.ctx.versionsChanged?.({ kept: [], dropped: [], full: true });
    this.versionsStarted = true;
  }

  private poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    if (!this.live || !this.connected || !this.scanned) return;
    const mark = this.poller.mark();
    try {
      const listing = await this.backend.listing();
      this.poller.diff(listing.files, mark);
    } catch (err) {
      if (this.backend.connectionError(err) !== null) this.lost(err);
      else this.ctx.log('warn', `${this.backend.endpoint}: listing failed: ${(err as Error).message}`);
    }
  }

  // ---- jobs ----

  private async upload(job: Extract<JobCommand, { kind: 'upload' }>): Promise<RemoteStat> {
    const rel = job.path;
    if (isFolderStat(job.sourceStat)) return this.makeFolder(rel);
    // A link is recreated as a link in local roots; neither SFTP nor S3 entries keep one.
    if (isLinkStat(job.sourceStat)) throw new Error(`${rel} is a symbolic link: ${this.backend.endpoint} keeps no links`);
    // The worker is given many jobs at once; the copies run a few at a time, in order.
    const release = await this.slots.take(job.sourceStat.size);
    try {
      return await this.copy(job);
    } finally {
      release();
    }
  }

  private async copy(job: Extract<JobCommand, { kind: 'upload' }>): Promise<RemoteStat> {
    const rel = job.path;
    const reader = await fromSource(sourceReader(job.source, this.ctx.log));
    const changed = () => new StaleJob(`source ${job.source.entry}:${rel} changed`);
    // A large copy is not begun for a version the source no longer has; a small one reads the
    // source whole, and that read tells (its stat is the version read).
    if (job.sourceStat.size > READ_WHOLE_MAX) {
      const src = await fromSource(reader.stat(rel));
      if (!src || !sameStat(src, job.sourceStat)) throw changed();
    }
    this.poller.begin(rel);
    let final: RemoteStat | null | undefined;
    const abort = new AbortController();
    this.copies.add(abort);
    let bytes = 0;
    // Progress for large copies only: for a small file it would be a message per file for nothing.
    const timer = job.sourceStat.size >= PROGRESS_MIN ? setInterval(() => this.ctx.progress(job.id, bytes), PROGRESS_MS) : null;
    const plan: UploadPlan = {
      jobId: job.id,
      rel,
      size: job.sourceStat.size,
      mtime: job.sourceStat.mtime,
      open: (offset) =>
        fromSource(reader.open(rel, offset)).then(markSourceStream, async (err: unknown) => {
          // Gone or replaced since the job was given: stale, not a failure.
          const now = await fromSource(reader.stat(rel)).catch(() => undefined);
          throw now === null || (now && !sameStat(now, job.sourceStat)) ? changed() : err;
        }),
      read: async (into) => {
        if (!reader.read) return readInto(await plan.open(0), into);
        const got = await fromSource(reader.read(rel, into));
        if (!got || !sameStat(got.stat, job.sourceStat)) throw changed();
        return got.bytes;
      },
      verifySource: async () => {
        const now = await fromSource(reader.stat(rel));
        if (!now || !sameStat(now, job.sourceStat)) throw new StaleJob(`source ${job.source.entry}:${rel} changed during the copy`);
      },
      progress: (n) => (bytes = n),
      log: (level, msg, fields) => this.ctx.log(level, msg, fields),
      signal: abort.signal,
    };
    const checked = (stat: RemoteStat) => {
      if (stat.size !== job.sourceStat.size) throw new Error(`copy of ${rel} has ${stat.size} bytes, expected ${job.sourceStat.size}`);
      return stat;
    };
    try {
      // Nothing there as far as the store and the last listing know (a file's first copy): no
      // stat first, and a commit that replaces nothing; what it finds there is asked below.
      if (job.expect === null && this.poller.stat(rel) === undefined) {
        try {
          final = checked(await this.backend.upload({ ...plan, ifAbsent: true }));
          return final;
        } catch (err) {
          if (!(err instanceof TargetExists)) throw err;
        }
      }
      const current = await this.backend.stat(rel);
      if (current && isFolderStat(current)) throw new Error(`${rel} exists and is a folder`);
      /** What the copy replaces (not a conflict copy) is kept as a version just before it does. */
      let beforeCommit: UploadPlan['beforeCommit'];
      if (current) {
        const matches = job.expect !== null && sameStat(current, job.expect);
        if (job.preserve || !matches) {
          if (current.size === job.sourceStat.size && (await this.sameBytes(reader, rel))) {
            // The same bytes already: nothing to copy (the first start on equal trees).
            final = current;
            return current;
          }
          await this.keepConflictCopy(rel);
        } else if (this.versions) {
          const versions = this.versions;
          beforeCommit = () => versions.keepOverwritten(rel, current.size);
        }
      }
      final = checked(await this.backend.upload({ ...plan, ...(beforeCommit ? { beforeCommit } : {}) }));
      return final;
    } finally {
      if (timer) {
        clearInterval(timer);
        this.ctx.progress(job.id, bytes);
      }
      this.copies.delete(abort);
      this.poller.settle(rel, final);
    }
  }

  /** Whether our copy of `rel` holds the same bytes as the source's. */
  private async sameBytes(reader: StorageReader, rel: string): Promise<boolean> {
    const [a, b] = await Promise.all([digest(fromSource(reader.open(rel, 0))), digest(this.backend.open(rel, 0))]);
    return a === b;
  }

  /** Moves this entry's copy aside under a conflict name: the next poll reports it as a new file. */
  private async keepConflictCopy(rel: string): Promise<void> {
    const now = new Date();
    for (let n = 0; ; n++) {
      const name = conflictName(rel, this.ctx.entry, now, n);
      if (await this.backend.stat(name)) continue;
      await this.backend.rename(rel, name);
      // The original name is empty now; a failed copy must not read as a deletion by the user.
      this.poller.settle(rel, null);
      this.poller.begin(rel);
      this.ctx.log('warn', `kept a conflicting copy as ${name}`, { path: rel, conflict: name });
      this.ctx.conflict(rel, name);
      return;
    }
  }

  private async makeFolder(rel: string): Promise<RemoteStat> {
    const current = await this.backend.folderStat(rel);
    if (current) return current;
    this.poller.begin(rel);
    let made: RemoteStat | undefined;
    try {
      made = await this.backend.makeFolder(rel);
      return made;
    } finally {
      this.poller.settle(rel, made);
    }
  }

  private async remove(rel: string, expect: FileStat): Promise<void> {
    const folder = isFolderStat(expect);
    const current = folder ? await this.backend.folderStat(rel) : await this.backend.stat(rel);
    if (!current) return;
    if (folder ? !isFolderStat(current) : isFolderStat(current) || !sameStat(current, expect)) {
      throw new StaleJob(`${rel} changed; not deleted`);
    }
    this.poller.begin(rel);
    let final: null | undefined;
    try {
      // A folder goes once its contents have (until then the job is stale, and retried).
      if (folder) await this.backend.removeFolder(rel);
      // A file's content is kept as a version: moved into the versions folder, not deleted.
      else if (!(await this.versions?.keepDeleted(rel, current.size))) await this.backend.remove(rel);
      final = null;
    } finally {
      this.poller.settle(rel, final);
    }
  }

  private async move(from: string, to: string, expect: FileStat | null): Promise<RemoteStat> {
    const current = await this.backend.stat(from);
    // Files only: a folder renamed is one gone and one new, its files moved one by one.
    if (!current || !expect || isFolderStat(current) || !sameStat(current, expect)) throw new StaleJob(`${from} changed; not moved`);
    if (await this.backend.stat(to)) throw new StaleJob(`${to} exists; not moved over`);
    this.poller.begin(from);
    this.poller.begin(to);
    let moved = false;
    let stat: RemoteStat | null = null;
    try {
      await this.backend.rename(from, to);
      moved = true;
      stat = await this.backend.stat(to);
      if (!stat) throw new Error(`${to} is missing after the move`);
      return stat;
    } finally {
      this.poller.settle(from, moved ? null : undefined);
      this.poller.settle(to, stat ?? undefined);
    }
  }
}

/**
 * Copies run at once, in the order asked: at most `files`, and at most `bytes` of them (a copy
 * larger than that runs alone). Many small copies keep the storage's connection busy; a few
 * large ones fill it as well, with bounded memory.
 */
export class CopySlots {
  private running = 0;
  private bytes = 0;
  private readonly waiting: { size: number; go: () => void }[] = [];

  constructor(private readonly limits: CopyLimits) {}

  async take(size: number): Promise<() => void> {
    if (this.waiting.length > 0 || !this.fits(size)) await new Promise<void>((go) => this.waiting.push({ size, go }));
    else this.start(size);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.bytes -= size;
      while (this.waiting.length > 0 && this.fits(this.waiting[0].size)) {
        const next = this.waiting.shift()!;
        this.start(next.size);
        next.go();
      }
    };
  }

  private fits(size: number): boolean {
    return this.running === 0 || (this.running < this.limits.files && this.bytes + size <= this.limits.bytes);
  }

  private start(size: number): void {
    this.running++;
    this.bytes += size;
  }
}

function markSourceStream(stream: Readable): Readable {
  stream.once('error', (err) => {
    if (err && typeof err === 'object') (err as unknown as Record<symbol, unknown>)[FROM_SOURCE] = true;
  });
  return stream;
}

async function digest(opening: Promise<Readable>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of await opening) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

