import type { JobCommand } from '../drivers/protocol.js';
import { isFolderStat } from '../../machines/reports.js';

export interface RunningTransfer {
  id: number;
  kind: JobCommand['kind'];
  filename: string;
  /** The entry the bytes come from (uploads). */
  source: string | null;
  bytes: number;
  size: number;
  /** Bytes per second since the job started. */
  rate: number;
  started: number;
  /** A folder made or removed: not a file, not counted as one. */
  folder?: boolean;
}

export interface EntryCounters {
  filesTransferred: number;
  bytesTransferred: number;
  deleted: number;
  moved: number;
  errors: number;
}

/**
 * What the entries' workers are doing now, and what they have done since the daemon started:
 * the running jobs with their progress, and counters for the metrics.
 */
export class TransferBoard {
  private readonly running = new Map<string, Map<number, RunningTransfer>>();
  private readonly counters = new Map<string, EntryCounters>();

  private of(entry: string): Map<number, RunningTransfer> {
    let jobs = this.running.get(entry);
    if (!jobs) this.running.set(entry, (jobs = new Map()));
    return jobs;
  }

  count(entry: string): EntryCounters {
    let c = this.counters.get(entry);
    if (!c) this.counters.set(entry, (c = { filesTransferred: 0, bytesTransferred: 0, deleted: 0, moved: 0, errors: 0 }));
    return c;
  }

  start(entry: string, job: JobCommand): void {
    this.of(entry).set(job.id, {
      id: job.id,
      kind: job.kind,
      filename: job.path,
      source: job.kind === 'upload' ? job.source.entry : null,
      bytes: 0,
      size: job.kind === 'upload' ? job.sourceStat.size : job.kind === 'delete' ? job.expect.size : (job.expect?.size ?? 0),
      rate: 0,
      started: Date.now(),
      ...(isFolderStat(job.kind === 'upload' ? job.sourceStat : (job.expect ?? {})) ? { folder: true } : {}),
    });
  }

  progress(entry: string, id: number, bytes: number): RunningTransfer | undefined {
    const t = this.of(entry).get(id);
    if (!t) return undefined;
    t.bytes = bytes;
    const seconds = (Date.now() - t.started) / 1000;
    t.rate = seconds > 0 ? Math.round(bytes / seconds) : 0;
    return t;
  }

  finish(entry: string, id: number, ok: boolean, error: boolean): RunningTransfer | undefined {
    const jobs = this.of(entry);
    const t = jobs.get(id);
    jobs.delete(id);
    const c = this.count(entry);
    if (t && ok && !t.folder) {
      if (t.kind === 'upload') {
        c.filesTransferred++;
        c.bytesTransferred += t.size;
      } else if (t.kind === 'delete') c.deleted++;
      else c.moved++;
    }
    if (error) c.errors++;
    return t;
  }

  /** The jobs of an entry whose worker is gone. */
  drop(entry: string, ids: Iterable<number>): void {
    const jobs = this.of(entry);
    for (const id of ids) jobs.delete(id);
  }

  runningOf(entry: string): RunningTransfer[] {
    return [...this.of(entry).values()].map((t) => {
      const seconds = (Date.now() - t.started) / 1000;
      return { ...t, rate: seconds > 0 ? Math.round(t.bytes / seconds) : 0 };
    });
  }
}
