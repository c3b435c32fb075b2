/**
 * What the page knows of the daemon, and the reads that fill it. Panels draw from it; nothing
 * here touches the DOM.
 */
import { statePath } from '../observe/mermaid.js';
import type { Api, Conflict, Entry, ListedFile, Machines, Transfers } from './api.js';
import type { EntryFacts, FileCount, Holdings } from './sync-status.js';

/** A listing is read 1,000 files a page (the API's cap). */
const PAGE = 1000;
/** Counting what waits reads at most this many pages; past it, the count says "10,000+". */
const COUNT_PAGES = 10;
/** What each entry owns and holds needs the whole listing: read up to this many pages. */
const HOLDINGS_PAGES = 20;

export interface ActorView {
  path: string[];
  context: Record<string, unknown> | null;
}

export type MachineDefinitions = Machines['machines'];

export class Model {
  entries: Entry[] = [];
  machines: MachineDefinitions | null = null;
  readonly actors = new Map<string, ActorView>();
  /** Transition events received per actor: a snapshot asked for before one is older than it. */
  private readonly transitions = new Map<string, number>();
  readonly pending = new Map<string, FileCount>();
  readonly failing = new Map<string, FileCount & { reason: string | null }>();
  /** Per entry; null when the listing is longer than the page reads, undefined before. */
  holdings: Map<string, Holdings> | null | undefined = undefined;
  totalFiles: number | null = null;
  /** How long the last walk of the listing took (ms): the next one waits five times that. */
  holdingsCost = 0;
  failingAll: FileCount | null = null;
  transfers: Transfers | null = null;
  conflicts: Conflict[] | null = null;

  constructor(private readonly api: Api) {}

  /** Reads the configured entries; true when they differ from those known. */
  async readEntries(): Promise<boolean> {
    const r = await this.api.get('/entries');
    if (!r.ok) return false;
    const changed = JSON.stringify(r.body.entries) !== JSON.stringify(this.entries);
    this.entries = r.body.entries;
    return changed;
  }

  /** Actor states and contexts; a transition event received meanwhile is newer and wins. */
  async readMachines(): Promise<boolean> {
    const before = new Map(this.transitions);
    const r = await this.api.get('/debug/machines');
    if (!r.ok) return false;
    this.machines = r.body.machines;
    for (const a of r.body.actors) {
      const old = this.actors.get(a.id);
      const newer = old && (this.transitions.get(a.id) ?? 0) !== (before.get(a.id) ?? 0);
      this.actors.set(a.id, { path: newer ? old.path : a.path, context: a.context });
    }
    return true;
  }

  /** A transition from the event stream. */
  transition(actor: string, to: unknown): void {
    this.transitions.set(actor, (this.transitions.get(actor) ?? 0) + 1);
    const old = this.actors.get(actor);
    this.actors.set(actor, { path: statePath(to).flatMap((s) => s.split('.')), context: old?.context ?? null });
  }

  /** Forgets actor states: they are unknown until read again. */
  forgetStates(): void {
    this.actors.clear();
  }

  async readTransfers(): Promise<boolean> {
    const r = await this.api.get('/transfers');
    if (r.ok) this.transfers = r.body;
    return r.ok;
  }

  async readConflicts(): Promise<boolean> {
    const r = await this.api.get('/conflicts');
    if (r.ok) this.conflicts = r.body.conflicts;
    return r.ok;
  }

  /** How long the last count took (ms): while many files wait, counting is not free. */
  countsCost = 0;

  /** Per entry: the files waiting for it and those failing; and all failing files. */
  async readCounts(): Promise<boolean> {
    const started = Date.now();
    const names = this.entries.map((e) => e.name);
    const [pending, failing, failingAll] = await Promise.all([
      Promise.all(names.map((n) => countFiles(this.api, `pending=${encodeURIComponent(n)}`))),
      Promise.all(names.map((n) => countFiles(this.api, `pending=${encodeURIComponent(n)}&failing=true`))),
      countFiles(this.api, 'failing=true'),
    ]);
    if (!failingAll) return false;
    for (const [i, n] of names.entries()) {
      const p = pending[i];
      const f = failing[i];
      if (!p || !f) return false;
      this.pending.set(n, p);
      this.failing.set(n, f);
    }
    this.failingAll = failingAll;
    this.countsCost = Date.now() - started;
    return true;
  }

  /** What each entry owns and holds, from the whole listing (given up past HOLDINGS_PAGES pages). */
  async readHoldings(): Promise<boolean> {
    const started = Date.now();
    const per = new Map<string, Holdings>(this.entries.map((e) => [e.name, { ownedFiles: 0, ownedBytes: 0, heldFiles: 0, heldBytes: 0 }]));
    let total = 0;
    for (let page = 0; ; page++) {
      if (page === HOLDINGS_PAGES) {
        this.holdingsCost = Date.now() - started;
        this.holdings = null;
        this.totalFiles = null;
        return true;
      }
      const r = await this.api.get(`/files?offset=${page * PAGE}&limit=${PAGE}`);
      if (!r.ok) return false;
      for (const f of r.body.files) {
        for (const o of f.owners) {
          const h = per.get(o);
          if (!h) continue;
          h.ownedFiles++;
          h.ownedBytes += f.size;
          if (f.uptodate.includes(o)) {
            h.heldFiles++;
            h.heldBytes += f.size;
          }
        }
      }
      total += r.body.files.length;
      if (r.body.files.length < PAGE) break;
    }
    this.holdingsCost = Date.now() - started;
    this.holdings = per;
    this.totalFiles = total;
    return true;
  }

  /** The overview's facts about one entry. */
  facts(name: string): EntryFacts {
    const actor = this.actors.get(`entry:${name}`);
    const context = actor?.context ?? null;
    const transfers = this.transfers?.entries.find((e) => e.name === name);
    const uploads = transfers?.running.filter((t) => t.kind === 'upload') ?? [];
    return {
      path: actor ? actor.path : null,
      lastError: typeof context?.lastError === 'string' ? context.lastError : null,
      queue: typeof context?.queue === 'number' ? context.queue : null,
      pending: this.pending.get(name) ?? null,
      failing: this.failing.get(name) ?? null,
      holdings: this.holdings?.get(name) ?? null,
      copied: uploads.reduce((sum, t) => sum + t.bytes, 0),
      rate: uploads.reduce((sum, t) => sum + t.rate, 0),
    };
  }
}

/** Counts the files of a filtered listing, page by page, up to COUNT_PAGES; null if unreachable. */
async function countFiles(api: Api, filter: string): Promise<(FileCount & { reason: string | null }) | null> {
  let files = 0;
  let size = 0;
  let reason: string | null = null;
  for (let page = 0; page < COUNT_PAGES; page++) {
    const r = await api.get(`/files?${filter}&offset=${page * PAGE}&limit=${PAGE}`);
    if (!r.ok) return null;
    const list: ListedFile[] = r.body.files;
    files += list.length;
    size += list.reduce((sum, f) => sum + f.size, 0);
    reason ??= list.find((f) => f.reason)?.reason ?? null;
    if (list.length < PAGE) return { files, bytes: size, capped: false, reason };
  }
  return { files, bytes: size, capped: true, reason };
}
