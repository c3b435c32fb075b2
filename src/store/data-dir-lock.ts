import fs from 'node:fs';
import path from 'node:path';

/**
 * One daemon per data dir. The lock is the file DATA_DIR/lock holding the owner's pid and its
 * start time (from /proc, so that a pid reused by another process is not taken for the owner).
 * It is created complete, atomically and only if absent (a hard link of a finished temporary
 * file), so no one ever reads a half-written lock. A lock whose owner is gone (the daemon was
 * SIGKILLed) or that cannot be read is stale and taken over.
 */

export const LOCK_NAME = 'lock';

/** The data dir is held by a live process. */
export class DataDirLocked extends Error {
  constructor(
    readonly pid: number,
    readonly dataDir: string,
  ) {
    super(`another ferry (pid ${pid}) is already running on ${dataDir}`);
    this.name = 'DataDirLocked';
  }
}

export interface DataDirLock {
  /** The lock file. */
  readonly file: string;
  /** The first folder this lock created (the data dir or an ancestor), if it did not exist. */
  readonly created: string | undefined;
  /** Removes the lock if it is still ours; idempotent. */
  release(): void;
}

/** The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), if readable. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether `pid` is alive, not a zombie, and (when `started` is known) the same process as then. */
function holderAlive(pid: number, started: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, it is someone else's.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true; // no /proc: kill(0) is all there is to know
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return false;
  return started === undefined || fields[19] === started;
}

/** The pid and start time a lock file holds, or null when it is not a lock Ferry wrote. */
function parse(text: string): { pid: number; started: string | undefined } | null {
  const [first, second] = text.split('\n');
  if (!first || !/^[1-9]\d{0,9}$/.test(first)) return null;
  return { pid: Number(first), started: second && /^\d+$/.test(second) ? second : undefined };
}

/** Creates `file` holding `content`, only if it does not exist (EEXIST otherwise), never half-written. */
function createExclusive(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content);
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    // A file system without hard links: an exclusive create, written at once.
    fs.writeFileSync(file, content, { flag: 'wx' });
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Takes the data dir's lock, creating the folder if needed; throws DataDirLocked when a live
 * process holds it. `dataDir` must be absolute.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const created = fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_NAME);
  const started = startTime(process.pid);
  const content = `${process.pid}\n${started ?? ''}\n`;
  for (let attempt = 0; ; attempt++) {
    try {
      createExclusive(file, content);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 10) throw err;
    }
    // Someone's lock: live, or stale.
    let text: string;
    let ino: number;
    try {
      const fd = fs.openSync(file, 'r');
      try {
        ino = fs.fstatSync(fd).ino;
        text = fs.readFileSync(fd, 'utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw err;
    }
    const holder = parse(text);
    if (holder && holderAlive(holder.pid, holder.started)) throw new DataDirLocked(holder.pid, dataDir);
    // Stale. Move it aside rather than delete it, to see that it is the very file judged stale (same
    // inode, same text) and not a fresh lock another starter made meanwhile; that one is put back
    // (a link: never over a lock).
    const aside = `${file}.stale-${process.pid}`;
    try {
      fs.renameSync(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    let same = false;
    try {
      same = fs.statSync(aside).ino === ino && fs.readFileSync(aside, 'utf8') === text;
    } catch {
      // gone: nothing to put back
    }
    if (!same) {
      try {
        fs.linkSync(aside, file);
      } catch {
        // Someone else's lock is there again: theirs stands.
      }
    }
    fs.rmSync(aside, { force: true });
  }
  const ours = fs.statSync(file).ino;
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.removeListener('exit', release);
    try {
      if (fs.statSync(file).ino === ours) fs.rmSync(file, { force: true });
    } catch {
      // already gone
    }
  };
  // An exit without a clean stop (an uncaught error) leaves no lock behind either.
  process.on('exit', release);
  return { file, created, release };
}

/**
 * Removes what a start that failed had created in a data dir that did not exist before it: the
 * store's files, then the folders up to `created`, each only if empty.
 */
export function removeFreshDataDir(dataDir: string, created: string | undefined): void {
  if (created === undefined) return;
  for (const name of fs.readdirSync(dataDir)) {
    if (/^ferry\.db(-wal|-shm|-journal)?$/.test(name)) fs.rmSync(path.join(dataDir, name), { force: true });
  }
  for (let dir = dataDir; ; dir = path.dirname(dir)) {
    try {
      fs.rmdirSync(dir);
    } catch {
      return;
    }
    if (dir === created || path.dirname(dir) === dir) return;
  }
}
