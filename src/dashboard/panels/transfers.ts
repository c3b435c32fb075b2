/**
 * Transfers: per entry, the running jobs as progress bars (bytes, size, rate) and the first
 * jobs of its queue. While the daemon is out of reach it says so, and claims nothing.
 */
import type { LoggedEvent, Transfers } from '../api.js';
import { $, clear, el } from '../dom.js';
import { bytes, clock, progressFigures } from '../format.js';

type Progress = Extract<LoggedEvent, { type: 'progress' }>;

export class TransfersPanel {
  private readonly box = $('transfers');
  /** entry/job id → its bar and figures, for progress events between two reads. */
  private bars = new Map<string, { bar: HTMLElement; figures: HTMLElement }>();

  render(transfers: Transfers | null, live: boolean, downSince: number | null): void {
    const box = clear(this.box);
    this.bars.clear();
    box.classList.toggle('stale', !live);
    if (!live) {
      box.append(
        el('div', {
          class: 'empty',
          'data-testid': 'transfers-unknown',
          text: `Unknown: the daemon is unreachable${downSince ? ` since ${clock(downSince / 1000)}` : ''}.`,
        }),
      );
      return;
    }
    if (!transfers) {
      box.append(el('div', { class: 'empty', text: 'Loading…' }));
      return;
    }
    let any = false;
    for (const e of transfers.entries) {
      const section = el('div', { class: 'xfer-entry', 'data-testid': `transfers-${e.name}` }, [
        el('div', { class: 'xfer-head' }, [el('strong', { text: e.name }), el('span', { class: 'muted', text: `${e.running.length} running · ${e.queued} queued` })]),
      ]);
      for (const t of e.running) {
        any = true;
        const bar = el('div');
        const pct = t.size > 0 ? Math.min(100, (t.bytes / t.size) * 100) : t.kind === 'upload' ? 0 : 100;
        bar.style.width = `${pct}%`;
        const figures = el('span', { class: 'figures', text: t.kind === 'upload' ? progressFigures(t.bytes, t.size, t.rate) : t.kind });
        this.bars.set(`${e.name}/${t.id}`, { bar, figures });
        const from = t.source ? `${t.source} → ${e.name}: ` : `${t.kind}: `;
        section.append(
          el('div', { class: 'job', 'data-testid': `transfer-${e.name}-${t.filename}` }, [
            el('span', { class: 'name', title: t.filename, text: from + t.filename }),
            figures,
            el('div', { class: 'bar' }, [bar]),
          ]),
        );
      }
      if (e.waiting.length) {
        any = true;
        const list = el('ul', { class: 'waiting' });
        for (const w of e.waiting.slice(0, 5)) {
          list.append(
            el('li', {
              text: `${w.kind} ${w.filename} (${bytes(w.size)})${w.attempts ? ` · ${w.attempts} attempts` : ''}${w.lastError ? ` · ${w.lastError}` : ''}`,
            }),
          );
        }
        if (e.queued > 5) list.append(el('li', { text: `… and ${e.queued - 5} more` }));
        section.append(list);
      }
      box.append(section);
    }
    if (!transfers.entries.length) box.append(el('div', { class: 'empty', text: 'No entries.' }));
    // Nothing running or queued says nothing of files a stopped entry lacks: the overview does.
    else if (!any) box.append(el('div', { class: 'empty', text: 'Nothing is running or queued.' }));
  }

  progress(p: Progress): void {
    const j = this.bars.get(`${p.entry}/${p.job}`);
    if (!j) return;
    j.bar.style.width = `${p.size > 0 ? Math.min(100, (p.bytes / p.size) * 100) : 0}%`;
    j.figures.textContent = progressFigures(p.bytes, p.size);
  }
}
