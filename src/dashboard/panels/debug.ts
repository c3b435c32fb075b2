/**
 * Debug, folded by default: each entry's statechart (live: the current state highlighted and
 * redrawn on every transition), its worker process (pid, cpu, memory, age) and its actor's
 * context; the rules actor drawn the same way. Drawn and polled only while open.
 */
import type { Api, Entry, EntryStats } from '../api.js';
import { draw } from '../diagram.js';
import { $, clear, el } from '../dom.js';
import { duration } from '../format.js';
import type { Model } from '../model.js';

interface Card {
  root: HTMLElement;
  state: HTMLElement;
  diagram: HTMLElement;
  stats: HTMLElement;
  context: HTMLElement;
}

export class DebugPanel {
  private readonly details = $('debug') as HTMLDetailsElement;
  private readonly cards = new Map<string, Card>();
  private readonly rules: Card = {
    root: $('rules-actor'),
    state: $('rules-state'),
    diagram: $('rules-diagram'),
    stats: el('dl'),
    context: $('rules-context'),
  };

  constructor(
    private readonly api: Api,
    private readonly model: Model,
    private readonly opened: () => void,
  ) {
    this.details.addEventListener('toggle', () => {
      if (this.details.open) this.opened();
    });
  }

  get open(): boolean {
    return this.details.open;
  }

  /** Opens the section and brings the entry's card into view. */
  reveal(name: string): void {
    this.details.open = true;
    this.cards.get(name)?.root.scrollIntoView({ block: 'start' });
  }

  build(entries: Entry[]): void {
    const box = clear($('debug-entries'));
    this.cards.clear();
    for (const entry of entries) {
      const t = `entry-${entry.name}`;
      const card: Card = {
        root: el('div', { class: 'card entry', 'data-testid': t, id: `debug-${entry.name}` }),
        state: el('span', { class: 'badge', 'data-testid': `${t}-state`, text: '…' }),
        diagram: el('div', { class: 'diagram', 'data-testid': `${t}-diagram` }),
        stats: el('dl', { class: 'kv', 'data-testid': `${t}-stats` }),
        context: el('dl', { class: 'kv', 'data-testid': `${t}-context` }),
      };
      const root = typeof entry.options.root === 'string' ? entry.options.root : null;
      card.root.append(
        card.diagram,
        el('div', { class: 'side' }, [
          el('h3', null, [entry.name, card.state]),
          el('div', { class: 'muted mono', text: entry.driver + (root ? ` · ${root}` : '') }),
          el('strong', { text: 'Worker process' }),
          card.stats,
          el('strong', { text: 'Actor' }),
          card.context,
        ]),
      );
      this.cards.set(entry.name, card);
      box.append(card.root);
      showStats(card, null, 'not running');
    }
  }

  /** Every actor's state, context and drawing (drawings only while open). */
  render(live: boolean): void {
    const m = this.model;
    for (const [name, card] of this.cards) this.show(card, `entry:${name}`, live);
    this.show(this.rules, 'rules', live);
    if (!live) for (const card of this.cards.values()) showStats(card, null, 'unknown: the daemon is unreachable');
    const rules = m.actors.get('rules');
    const ctx = rules?.context;
    if (live && ctx) {
      kv(this.rules.context, [
        ['staged rules', String(ctx.staged)],
        ['active rules', String(ctx.active)],
        ['last error', typeof ctx.lastError === 'string' ? ctx.lastError : '–'],
      ]);
    }
  }

  private show(card: Card, id: string, live: boolean): void {
    const a = this.model.actors.get(id);
    card.root.classList.toggle('stale', !live);
    if (!live || !a) {
      card.state.textContent = live ? '…' : 'unknown';
      card.state.className = 'badge unknown';
      return;
    }
    card.state.textContent = a.path.join('.');
    card.state.className = `badge ${a.path[0] ?? ''}`;
    const machine = this.model.machines?.[id === 'rules' ? 'rules' : 'entry'];
    if (this.open && machine) draw(card.diagram, machine, a.path);
    const x = a.context;
    if (id !== 'rules' && x) {
      const watch = x.watch as { folders: number; watched: number; polled: number } | null;
      kv(card.context, [
        ['queued jobs', String(x.queue)],
        ['restarts', String(x.restarts)],
        ['failures', String(x.failures)],
        ['folders watched', watch ? `${watch.watched} of ${watch.folders}` : '–'],
        ['folders polled', watch ? String(watch.polled) + (watch.polled ? ' (no inotify watch left: rescanned at an interval)' : '') : '–'],
        ['last error', typeof x.lastError === 'string' ? x.lastError : '–'],
      ]);
    }
  }

  /** The worker processes' stats, for the entries that run one (while open). */
  async refreshStats(): Promise<void> {
    if (!this.open) return;
    await Promise.all(
      [...this.cards].map(async ([name, card]) => {
        const a = this.model.actors.get(`entry:${name}`);
        if (!a || a.path[0] !== 'active' || a.path[1] !== 'running') {
          showStats(card, null, 'not running');
          return;
        }
        const r = await this.api.call<EntryStats>('GET', `/entries/${encodeURIComponent(name)}/stats`);
        showStats(card, r.ok ? r.body.info : null, 'not running');
      }),
    );
  }
}

function kv(dl: HTMLElement, pairs: [string, string][]): void {
  clear(dl);
  for (const [k, v] of pairs) dl.append(el('dt', { text: k }), el('dd', { text: v }));
}

function showStats(card: Card, info: EntryStats['info'] | null, none: string): void {
  if (!info) {
    clear(card.stats).append(el('dd', { class: 'muted none', text: none }));
    return;
  }
  kv(card.stats, [
    ['pid', String(info.pid)],
    ['cpu', `${info.cpu.toFixed(1)} %`],
    ['cpu time', info.ctime],
    ['mem', `${info.mem.toFixed(1)} %`],
    ['rss (mem_info1)', info.mem_info1],
    ['vms (mem_info2)', info.mem_info2],
    ['age', duration(info.age)],
  ]);
}
