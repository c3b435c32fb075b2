/**
 * Files: the lists that answer "what is not in sync?", each read page by page from the API,
 * filtered on the server: the files an entry waits for (`?pending=NAME`), those whose copy keeps
 * failing (`?failing=true`, with the reason), every file, and the conflict copies kept
 * (`/conflicts`). The search box narrows any of them to filenames holding its text (`?q=`).
 */
import type { Api, Conflict, ListedFile } from '../api.js';
import { $, clear, el, filenameNode } from '../dom.js';
import { bytes, clock, count } from '../format.js';
import type { Model } from '../model.js';
import { debounce } from '../schedule.js';

export type FilesView = { kind: 'all' } | { kind: 'pending'; entry: string } | { kind: 'failing' } | { kind: 'conflicts' };

const PAGE = 50;

const sameView = (a: FilesView, b: FilesView) => a.kind === b.kind && (a.kind !== 'pending' || (b.kind === 'pending' && a.entry === b.entry));

export class FilesPanel {
  view: FilesView = { kind: 'all' };
  /** Whether someone chose a list: until then the page opens on what needs attention. */
  chosen = false;
  private offset = 0;
  private q = '';
  private seq = 0;
  private readonly tabs = $('files-tabs');
  private readonly head = $('files-head');
  private readonly body = $('files');
  private readonly range = $('files-range');
  private readonly note = $('files-note');
  private readonly prev = $('files-prev') as HTMLButtonElement;
  private readonly next = $('files-next') as HTMLButtonElement;
  private readonly search = $('files-search') as HTMLInputElement;

  constructor(
    private readonly api: Api,
    private readonly model: Model,
  ) {
    this.prev.addEventListener('click', () => {
      this.offset = Math.max(0, this.offset - PAGE);
      void this.refresh();
    });
    this.next.addEventListener('click', () => {
      this.offset += PAGE;
      void this.refresh();
    });
    const searched = debounce(() => {
      this.q = this.search.value.trim();
      this.offset = 0;
      void this.refresh();
    }, 250);
    this.search.addEventListener('input', searched);
  }

  /** Shows a list from its first page. */
  show(view: FilesView, chosen = true): void {
    this.chosen ||= chosen;
    if (!sameView(view, this.view)) this.offset = 0;
    this.view = view;
    this.renderTabs();
    void this.refresh();
  }

  /** The tabs, with the counts the model holds. */
  renderTabs(): void {
    const m = this.model;
    const label = (text: string, n: number | null | undefined, capped = false) =>
      n === null || n === undefined ? text : `${text} (${count(n)}${capped ? '+' : ''})`;
    interface Tab {
      view: FilesView;
      id: string;
      text: string;
      alert: boolean;
    }
    const tabs: Tab[] = [
      ...m.entries.map((e): Tab => {
        const c = m.pending.get(e.name);
        return { view: { kind: 'pending', entry: e.name }, id: `pending-${e.name}`, text: label(`Waiting in ${e.name}`, c?.files, c?.capped), alert: !!c?.files };
      }),
      { view: { kind: 'failing' }, id: 'failing', text: label('Failing', m.failingAll?.files, m.failingAll?.capped), alert: !!m.failingAll?.files },
      { view: { kind: 'conflicts' }, id: 'conflicts', text: label('Conflicts', m.conflicts?.length), alert: !!m.conflicts?.length },
      { view: { kind: 'all' }, id: 'all', text: label('All files', m.totalFiles), alert: false },
    ];
    clear(this.tabs);
    for (const tab of tabs) {
      const selected = sameView(tab.view, this.view);
      this.tabs.append(
        el('button', {
          type: 'button',
          role: 'tab',
          class: `tab${tab.alert ? ' alert' : ''}`,
          'aria-selected': String(selected),
          'data-testid': `files-tab-${tab.id}`,
          text: tab.text,
          onclick: () => {
            this.show(tab.view);
          },
        }),
      );
    }
  }

  /** Marks the list as the last one known while the daemon is out of reach. */
  stale(down: boolean, since?: number): void {
    this.body.closest('.card')?.classList.toggle('stale', down);
    this.note.textContent = down && since ? `The daemon is unreachable: this is the list as it was at ${clock(since / 1000)}.` : '';
  }

  async refresh(): Promise<void> {
    const mine = ++this.seq;
    const view = this.view;
    if (view.kind === 'conflicts') {
      this.showConflicts();
      return;
    }
    const query = new URLSearchParams({ offset: String(this.offset), limit: String(PAGE + 1) });
    if (view.kind === 'pending') query.set('pending', view.entry);
    if (view.kind === 'failing') query.set('failing', 'true');
    if (this.q) query.set('q', this.q);
    const r = await this.api.get(`/files?${query.toString()}`);
    if (mine !== this.seq) return;
    if (!r.ok) {
      if (r.status !== 0) this.note.textContent = r.reason;
      return;
    }
    let files = r.body.files;
    if (files.length === 0 && this.offset > 0) {
      this.offset = Math.max(0, this.offset - PAGE);
      return this.refresh();
    }
    const more = files.length > PAGE;
    files = files.slice(0, PAGE);
    this.showFiles(view, files);
    this.showRange(files.length, more, this.total(view));
  }

  /** How many files the list holds, when the model knows. */
  private total(view: FilesView): number | null {
    if (this.q) return null;
    const m = this.model;
    const known = (c: { files: number; capped: boolean } | null | undefined) => (c && !c.capped ? c.files : null);
    if (view.kind === 'pending') return known(m.pending.get(view.entry));
    if (view.kind === 'failing') return known(m.failingAll);
    if (view.kind === 'all') return m.totalFiles;
    return m.conflicts?.length ?? null;
  }

  private showRange(shown: number, more: boolean, total: number | null): void {
    this.range.textContent = shown ? `${count(this.offset + 1)}–${count(this.offset + shown)}${total !== null && total >= this.offset + shown ? ` of ${count(total)}` : ''}` : '';
    this.prev.disabled = this.offset === 0;
    this.next.disabled = !more;
  }

  private showFiles(view: FilesView, files: ListedFile[]): void {
    const failing = view.kind === 'failing';
    clear(this.head).append(
      el('tr', null, [
        el('th', { text: 'File' }),
        el('th', { class: 'num', text: 'Size' }),
        el('th', { text: 'Owners (✓ up to date, … waiting)' }),
        failing ? el('th', { text: 'Why it fails' }) : null,
      ]),
    );
    clear(this.body);
    if (!files.length) {
      this.body.append(el('tr', { class: 'none' }, [el('td', { class: 'empty', colspan: failing ? 4 : 3, text: this.emptyText(view) })]));
    }
    for (const f of files) {
      this.body.append(
        el('tr', { 'data-testid': `file-row-${f.filename}`, title: f.fid }, [
          el('td', { class: 'file', 'data-label': 'File' }, [filenameNode(f.filename)]),
          el('td', { class: 'num', 'data-label': 'Size', text: bytes(f.size) }),
          el('td', { class: 'owners', 'data-label': 'Owners' }, owners(f.owners, f.uptodate)),
          failing ? el('td', { class: 'reason', 'data-label': 'Why', text: f.reason ?? '' }) : null,
        ]),
      );
    }
  }

  private emptyText(view: FilesView): string {
    const q = this.q ? ` whose name holds “${this.q}”` : '';
    if (view.kind === 'pending') return `${view.entry} is waiting for no file${q}: it holds the latest version of every file it owns.`;
    if (view.kind === 'failing') return `No file${q} is failing.`;
    if (view.kind === 'conflicts') return `No conflict copy${q}.`;
    return this.q ? `No file${q}.` : 'No files yet.';
  }

  private showConflicts(): void {
    const all = this.model.conflicts ?? [];
    const q = this.q.toLowerCase();
    const matching = q ? all.filter((c) => c.filename.toLowerCase().includes(q) || c.original.toLowerCase().includes(q)) : all;
    if (this.offset >= matching.length) this.offset = Math.max(0, Math.floor((matching.length - 1) / PAGE) * PAGE);
    const page = matching.slice(this.offset, this.offset + PAGE);
    clear(this.head).append(
      el('tr', null, [el('th', { text: 'Conflict copy' }), el('th', { class: 'num', text: 'Size' }), el('th', { text: 'Kept from' })]),
    );
    clear(this.body);
    if (!page.length) this.body.append(el('tr', { class: 'none' }, [el('td', { class: 'empty', colspan: 3, text: this.emptyText(this.view) })]));
    for (const c of page) this.body.append(conflictRow(c));
    this.showRange(page.length, this.offset + PAGE < matching.length, matching.length);
  }
}

function owners(list: string[], uptodate: string[]): (HTMLElement | string)[] {
  if (!list.length) return [el('span', { class: 'muted', text: 'none' })];
  return list.map((o) => {
    const fresh = uptodate.includes(o);
    return el('span', {
      class: `owner ${fresh ? 'fresh' : 'stale'}`,
      title: `${o} ${fresh ? 'holds the latest version' : 'is waiting for the latest version'}`,
      text: `${o} ${fresh ? '✓' : '…'}`,
    });
  });
}

function conflictRow(c: Conflict): HTMLElement {
  return el('tr', { 'data-testid': `conflict-row-${c.filename}`, title: c.fid }, [
    el('td', { class: 'file', 'data-label': 'Copy' }, [
      filenameNode(c.filename),
      el('div', { class: 'muted small' }, ['a version of ', filenameNode(c.original)]),
    ]),
    el('td', { class: 'num', 'data-label': 'Size', text: bytes(c.size) }),
    el('td', { class: 'kept', 'data-label': 'Kept from', text: `${c.entry}, ${new Date(c.time * 1000).toLocaleString()}` }),
  ]);
}
