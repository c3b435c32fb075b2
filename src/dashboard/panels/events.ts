/**
 * Recent changes: the daemon's events, newest first, from its backlog on load and live after;
 * and what the page saw of the daemon itself (lost, back, restarted, events missed).
 */
import type { LoggedEvent } from '../api.js';
import { $, el } from '../dom.js';
import { clock, progressFigures } from '../format.js';
import { statePath } from '../../observe/mermaid.js';

/** A state as the event stream gives it ('active.running', or a state value): 'active.running'. */
const stateText = (value: unknown) => statePath(value).join('.');

/** A line of the page's own: the connection, a restart, a gap. */
export interface PageNote {
  type: 'daemon' | 'gap';
  text: string;
  time: number;
}

type Line = LoggedEvent | PageNote;

/** Lines kept: the backlog replayed on load can hold 10,000 events. */
const KEEP = 200;

export function describe(e: Line): string {
  switch (e.type) {
    case 'transition':
      return `${e.actor}  ${e.from ? stateText(e.from) : '∅'} → ${stateText(e.to)}  (${e.event})`;
    case 'file':
      return `${e.entry} ${e.kind} ${e.from ? `${e.from} → ` : ''}${e.path}${e.conflict ? `  (kept as ${e.conflict})` : ''}`;
    case 'progress':
      return `${e.entry} ← ${e.path}  ${progressFigures(e.bytes, e.size)}`;
    case 'actor':
      return `${e.actor} failed and was started again: ${e.error}`;
    default:
      return e.text;
  }
}

export class EventsPanel {
  private readonly list = $('log');
  private readonly filesOnly = $('log-files-only') as HTMLInputElement;
  private readonly items: { e: Line; li: HTMLElement }[] = [];

  constructor() {
    this.filesOnly.addEventListener('change', () => this.list.classList.toggle('files-only', this.filesOnly.checked));
  }

  add(e: Line): void {
    const top = this.items[0] as { e: Line; li: HTMLElement } | undefined;
    const text = describe(e);
    // Progress of one job updates its line instead of flooding the log.
    if (e.type === 'progress' && top?.e.type === 'progress' && top.e.entry === e.entry && top.e.job === e.job) {
      top.e = e;
      const d = top.li.lastElementChild as HTMLElement;
      d.textContent = text;
      d.title = text;
      return;
    }
    const kind = e.type === 'file' ? e.kind : e.type;
    const li = el('li', { class: `t-${e.type}` }, [
      el('span', { class: 't', text: clock(e.time) }),
      el('span', { class: `k ${e.type}`, text: kind }),
      el('span', { class: 'd', title: text, text }),
    ]);
    this.list.querySelector('.placeholder')?.remove();
    this.list.prepend(li);
    this.items.unshift({ e, li });
    for (const old of this.items.splice(KEEP)) old.li.remove();
  }

  note(type: PageNote['type'], text: string): void {
    this.add({ type, text, time: Date.now() / 1000 });
  }

  /** Before the first event: what the log is waiting for. */
  placeholder(text: string): void {
    const p = this.list.querySelector('.placeholder .d');
    if (p) p.textContent = text;
  }
}
