/**
 * The overview, first on the page: one row per entry that says in words whether it is in sync
 * ("Up to date", "Syncing 45 % — 1,203 files, 2.1 GB left", "Stopped — 12 files waiting",
 * "Failing — why", "Unknown" while the daemon is out of reach), what it holds of what it owns,
 * its transfer rate, and its controls. A count of files links to the list of those files.
 */
import type { Entry } from '../api.js';
import { $, clear, el, setMessage, type MessageKind } from '../dom.js';
import { bytes } from '../format.js';
import type { Model } from '../model.js';
import { entryStatus, holdingsText, overallText, statusText, type EntryStatus } from '../sync-status.js';

export type Control = 'start' | 'stop' | 'restart';

export interface OverviewActions {
  control(name: string, control: Control): void;
  showList(name: string, list: 'pending' | 'failing'): void;
  details(name: string): void;
}

interface Row {
  root: HTMLElement;
  state: HTMLElement;
  holds: HTMLElement;
  rate: HTMLElement;
  message: HTMLElement;
  buttons: HTMLButtonElement[];
  busy: boolean;
  shown: string;
}

export class Overview {
  private readonly rows = new Map<string, Row>();
  private readonly box = $('overview');
  private readonly summary = $('overview-summary');

  constructor(private readonly actions: OverviewActions) {}

  build(entries: Entry[]): void {
    clear(this.box);
    this.rows.clear();
    if (!entries.length) this.box.append(el('div', { class: 'empty', text: 'No entries configured.' }));
    for (const entry of entries) {
      const name = entry.name;
      const t = `overview-${name}`;
      const root = typeof entry.options.root === 'string' ? entry.options.root : null;
      const buttons = (['start', 'stop', 'restart'] as const).map((control) =>
        el('button', {
          type: 'button',
          'data-testid': `entry-${name}-${control}`,
          text: control.charAt(0).toUpperCase() + control.slice(1),
          onclick: () => {
            this.actions.control(name, control);
          },
        }),
      );
      const row: Row = {
        root: el('div', { class: 'row', 'data-testid': t, 'data-status': 'checking' }),
        state: el('div', { class: 'words', 'data-testid': `${t}-state`, text: 'Checking…' }),
        holds: el('div', { class: 'holds muted', 'data-testid': `${t}-holds`, text: '–' }),
        rate: el('div', { class: 'rate', 'data-testid': `${t}-rate`, title: 'transfer rate into the entry', text: '–' }),
        message: el('div', { class: 'message', 'data-testid': `entry-${name}-message` }),
        buttons,
        busy: false,
        shown: '',
      };
      row.root.append(
        el('div', { class: 'who' }, [
          el('span', { class: 'dot', 'aria-hidden': 'true' }),
          el('strong', { class: 'name', text: name }),
          el('span', { class: 'muted mono driver', text: entry.driver + (root ? ` · ${root}` : '') }),
        ]),
        el('div', { class: 'what' }, [row.state, row.holds]),
        row.rate,
        el('div', { class: 'buttons' }, [
          ...buttons,
          el('button', {
            type: 'button',
            class: 'link',
            'data-testid': `${t}-details`,
            text: 'Details',
            title: 'its statechart, worker process and actor, in Debug',
            onclick: () => {
              this.actions.details(name);
            },
          }),
        ]),
        row.message,
      );
      this.rows.set(name, row);
      this.box.append(row.root);
    }
  }

  render(model: Model, live: boolean): void {
    const statuses: { name: string; status: EntryStatus }[] = [];
    for (const [name, row] of this.rows) {
      const facts = model.facts(name);
      const status = entryStatus(facts, live);
      statuses.push({ name, status });
      row.root.dataset.status = status.kind;
      const key = JSON.stringify(status);
      if (key !== row.shown) {
        row.shown = key;
        row.state.title = statusText(status);
        clear(row.state).append(el('strong', { class: 'label', text: status.label }));
        status.parts.forEach((part, i) => {
          row.state.append(i === 0 ? ' — ' : ', ');
          const link = part.link;
          if (link) {
            row.state.append(
              el('button', {
                type: 'button',
                class: 'link',
                'data-testid': `overview-${name}-${link}`,
                text: part.text,
                title: link === 'pending' ? `list the files ${name} is waiting for` : `list the files failing for ${name}`,
                onclick: () => {
                  this.actions.showList(name, link);
                },
              }),
            );
          } else {
            row.state.append(part.text);
          }
        });
      }
      row.holds.textContent = live ? holdingsText(facts.holdings) : 'holds –';
      row.holds.title = live && !facts.holdings && model.holdings === null ? 'too many files to count them all from the page' : '';
      row.rate.textContent = live && facts.rate > 0 ? `${bytes(facts.rate)}/s` : '';
      for (const b of row.buttons) b.disabled = !live || row.busy;
    }
    const overall = overallText(statuses, live);
    this.summary.textContent = overall.text;
    this.summary.dataset.kind = overall.kind;
  }

  busy(name: string, busy: boolean): void {
    const row = this.rows.get(name);
    if (row) row.busy = busy;
  }

  message(name: string, kind: MessageKind, text: string, cause?: 'unreachable'): void {
    const row = this.rows.get(name);
    if (row) setMessage(row.message, kind, text, cause);
  }

  /** Clears the note that `control` was done, if it is still the one shown. */
  clearDone(name: string, control: Control): void {
    const row = this.rows.get(name);
    if (row?.message.textContent === `${control}: done`) setMessage(row.message, '', '');
  }

  /** Clears the messages about a daemon that could not be reached: it can now. */
  clearStale(): void {
    for (const row of this.rows.values()) if (row.message.dataset.cause === 'unreachable') setMessage(row.message, '', '');
  }
}
