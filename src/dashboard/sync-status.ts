/**
 * What the overview says of an entry, in words, from what the API tells of it. Pure: no DOM,
 * no fetch; test/dashboard-status.test.ts checks it in Node.
 */
import { bytes, count, percent, plural } from './format.js';

/** Files counted by paging a filtered listing: `capped` when there were more than it read. */
export interface FileCount {
  files: number;
  bytes: number;
  capped: boolean;
}

/** What the entry owns and holds, from a walk of the whole listing (null past its limit). */
export interface Holdings {
  ownedFiles: number;
  ownedBytes: number;
  heldFiles: number;
  heldBytes: number;
}

export interface EntryFacts {
  /** The entry actor's state path (['active', 'running']), null before the first answer. */
  path: string[] | null;
  lastError: string | null;
  /** Jobs queued or running for it (copies, deletions, renames). */
  queue: number | null;
  /** Files it owns and lacks in their latest version. */
  pending: FileCount | null;
  /** Of those, the ones whose job keeps failing, with the last reason. */
  failing: (FileCount & { reason: string | null }) | null;
  holdings: Holdings | null;
  /** Bytes already copied by its running jobs, and their rate (bytes/s). */
  copied: number;
  rate: number;
}

export type StatusKind = 'unknown' | 'checking' | 'uptodate' | 'syncing' | 'starting' | 'stopped' | 'failing';

/** A part of the sentence; `link` names the list that shows those files. */
export interface Part {
  text: string;
  link?: 'pending' | 'failing';
}

export interface EntryStatus {
  kind: StatusKind;
  /** "Up to date", "Syncing 45 %", "Stopped", "Failing", "Unknown" … */
  label: string;
  /** What follows the dash: "1,203 files, 2.1 GB left". */
  parts: Part[];
}

/** The sentence as plain text: "Stopped — 12 files waiting". */
export function statusText(status: EntryStatus): string {
  return status.parts.length ? `${status.label} — ${status.parts.map((p) => p.text).join(', ')}` : status.label;
}

function filesText(c: FileCount): string {
  return c.capped ? `${count(c.files)}+ files` : plural(c.files, 'file');
}

/** What waits for the entry: files to copy, else other jobs (deletions, renames). */
function waiting(f: EntryFacts, word: string): Part | null {
  if (f.pending && f.pending.files > 0) {
    return { text: `${filesText(f.pending)} ${word}${f.pending.bytes > 0 ? ` (${bytes(f.pending.bytes)})` : ''}`, link: 'pending' };
  }
  if (f.queue) return { text: `${plural(f.queue, 'change')} ${word} (deletions or renames)` };
  return null;
}

export function entryStatus(f: EntryFacts, live: boolean): EntryStatus {
  if (!live) return { kind: 'unknown', label: 'Unknown', parts: [{ text: 'the daemon is unreachable' }] };
  if (!f.path || !f.pending) return { kind: 'checking', label: 'Checking…', parts: [] };
  const [top, inner] = f.path;
  if (top === 'restarting') {
    return { kind: 'failing', label: 'Failing', parts: [{ text: `${f.lastError ?? 'its worker exited'}; restarting` }] };
  }
  if (top === 'stopped') {
    const parts = [waiting(f, 'waiting') ?? { text: 'nothing waiting' }];
    if (f.lastError) parts.push({ text: f.lastError });
    return { kind: 'stopped', label: 'Stopped', parts };
  }
  if (top === 'active' && inner === 'draining') {
    return { kind: 'starting', label: 'Stopping', parts: [{ text: 'its worker finishes or abandons the jobs it has' }] };
  }
  if (top === 'active' && inner !== 'running') {
    const w = waiting(f, 'waiting');
    return { kind: 'starting', label: 'Starting', parts: [{ text: 'rescanning its root' }, ...(w ? [w] : [])] };
  }
  if (f.failing && f.failing.files > 0) {
    const why = f.failing.reason ? `: ${f.failing.reason}` : '';
    return { kind: 'failing', label: 'Failing', parts: [{ text: `${filesText(f.failing)} keep failing${why}`, link: 'failing' }] };
  }
  if (f.pending.files > 0) {
    const left = Math.max(0, f.pending.bytes - f.copied);
    const h = f.holdings;
    // Done = what it owns less what is left, in bytes (files when they are all empty).
    const pct = h && !f.pending.capped
      ? h.ownedBytes > 0
        ? ` ${percent(h.ownedBytes - left, h.ownedBytes)} %`
        : ` ${percent(h.ownedFiles - f.pending.files, h.ownedFiles)} %`
      : '';
    return { kind: 'syncing', label: `Syncing${pct}`, parts: [{ text: `${filesText(f.pending)}, ${bytes(left)} left`, link: 'pending' }] };
  }
  const left = waiting(f, 'left');
  if (left) return { kind: 'syncing', label: 'Syncing', parts: [left] };
  return { kind: 'uptodate', label: 'Up to date', parts: [] };
}

/** "holds 4,016 of 4,028 files · 1.2 GB of 1.3 GB" */
export function holdingsText(h: Holdings | null): string {
  if (!h) return '–';
  return `holds ${count(h.heldFiles)} of ${plural(h.ownedFiles, 'file')} · ${bytes(h.heldBytes)} of ${bytes(h.ownedBytes)}`;
}

/** The whole answer to "is everything in sync?", from every entry's status. */
export function overallText(statuses: { name: string; status: EntryStatus }[], live: boolean): { kind: 'unknown' | 'checking' | 'insync' | 'outofsync'; text: string } {
  if (!live) return { kind: 'unknown', text: 'Unknown: the daemon is unreachable.' };
  if (statuses.length === 0) return { kind: 'checking', text: 'No entries configured.' };
  if (statuses.some((s) => s.status.kind === 'checking')) return { kind: 'checking', text: 'Checking…' };
  const behind = statuses.filter((s) => s.status.kind !== 'uptodate');
  if (behind.length === 0) return { kind: 'insync', text: 'Everything is in sync: every entry holds the latest version of every file it owns.' };
  return {
    kind: 'outofsync',
    text: `Not in sync: ${behind.map((s) => `${s.name} ${statusText(s.status).replace(/^./, (c) => c.toLowerCase())}`).join('; ')}.`,
  };
}
