/**
 * A file's versions, in a row under its row in a file list: what the entries keep of its content
 * that a sync overwrote or deleted (`GET /files/FID/versions`), newest first, each with a Restore
 * button (`PUT /files/FID/versions/ID/restore`: the version goes back in place in the entry that
 * keeps it and syncs from there; a refusal shows the API's reason).
 */
import type { Api, Version, Versions } from '../api.js';
import { clear, el, setMessage } from '../dom.js';
import { bytes } from '../format.js';

const WHY: Record<Version['reason'], string> = { overwritten: 'overwritten by a sync', deleted: 'deleted by a sync' };

export class VersionsRow {
  readonly row: HTMLTableRowElement;
  private readonly list: HTMLElement;
  private readonly message: HTMLElement;
  private seq = 0;

  constructor(
    private readonly api: Api,
    private readonly fid: string,
    private readonly filename: string,
    colspan: number,
    /** Told once a restore is done, with what to say: the lists are read again (this row may leave with its file). */
    private readonly restored: (message: string) => void,
  ) {
    this.list = el('div', { class: 'versions-list', 'data-testid': `versions-${filename}` }, [el('span', { class: 'muted', text: 'Loading…' })]);
    this.message = el('div', { class: 'message', 'data-testid': `versions-message-${filename}` });
    this.row = el('tr', { class: 'versions' }, [el('td', { colspan }, [this.list, this.message])]);
  }

  /** Spans the columns of the list it is shown in. */
  span(colspan: number): void {
    this.row.firstElementChild?.setAttribute('colspan', String(colspan));
  }

  async load(): Promise<void> {
    const mine = ++this.seq;
    const r = await this.api.call<Versions>('GET', `/files/${encodeURIComponent(this.fid)}/versions`);
    if (mine !== this.seq) return;
    if (!r.ok) {
      if (r.status !== 0) setMessage(this.message, 'error', r.reason);
      return;
    }
    clear(this.list);
    if (r.body.versions.length === 0) {
      this.list.append(el('span', { class: 'muted', text: 'No versions kept: no sync has overwritten or deleted this file.' }));
      return;
    }
    this.list.append(
      el('table', { class: 'versions-table' }, [
        el('thead', null, [el('tr', null, [el('th', { text: 'Kept' }), el('th', { text: 'In' }), el('th', { class: 'num', text: 'Size' }), el('th', { text: 'Why' }), el('th')])]),
        el(
          'tbody',
          null,
          r.body.versions.map((v) =>
            el('tr', { 'data-testid': `version-row-${v.id}` }, [
              el('td', { 'data-label': 'Kept', text: new Date(v.time * 1000).toLocaleString() }),
              el('td', { 'data-label': 'In', text: v.entry }),
              el('td', { class: 'num', 'data-label': 'Size', text: bytes(v.size) }),
              el('td', { 'data-label': 'Why', class: 'muted', text: WHY[v.reason] }),
              el('td', null, [
                el('button', {
                  type: 'button',
                  'data-testid': `version-restore-${v.id}`,
                  text: 'Restore',
                  title: `put this version back in ${v.entry}; it then syncs to every owner`,
                  onclick: (e) => void this.restore(v, e.currentTarget as HTMLButtonElement),
                }),
              ]),
            ]),
          ),
        ),
      ]),
    );
  }

  private async restore(v: Version, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    setMessage(this.message, 'muted', `restoring the version of ${new Date(v.time * 1000).toLocaleString()}…`);
    const r = await this.api.call('PUT', `/files/${encodeURIComponent(this.fid)}/versions/${v.id}/restore`);
    button.disabled = false;
    if (r.ok) {
      const text = `restored ${this.filename} in ${v.entry}; it syncs to every owner`;
      setMessage(this.message, 'ok', text);
      this.restored(text);
    } else {
      setMessage(this.message, 'error', r.reason, r.status === 0 ? 'unreachable' : undefined);
    }
    await this.load();
  }
}
