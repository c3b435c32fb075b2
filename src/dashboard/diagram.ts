/**
 * Statecharts drawn with mermaid (its browser bundle, served by the daemon from its own
 * dependencies as `assets/mermaid.min.js`), from the text of the one toMermaid, the server's.
 */
import type { Mermaid } from 'mermaid';
import { toMermaid } from '../observe/mermaid.js';
import { clear, el } from './dom.js';

declare global {
  interface Window {
    mermaid?: Mermaid;
  }
}

let initialized = false;
function mermaid(): Mermaid | null {
  const m = window.mermaid;
  if (!m) return null;
  if (!initialized) {
    m.initialize({
      startOnLoad: false,
      securityLevel: 'strict',
      theme: 'neutral',
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
      state: { nodeSpacing: 60, rankSpacing: 40, useMaxWidth: true },
    });
    initialized = true;
  }
  return m;
}

let renderSeq = 0;

/** The smallest a drawing is scaled to fit its box: its labels stay readable. */
const MIN_SCALE = 0.7;

/**
 * Draws `machine` at `path` into `box`; a later call for the same box wins. Left to right where
 * there is room, top to bottom on a narrow screen, so that labels keep a readable size.
 * Once drawn, the box's `data-state` is the state shown (`active.running`).
 */
export function draw(box: HTMLElement, machine: unknown, path: string[]): void {
  const stateText = path.join('.');
  const direction = box.clientWidth > 0 && box.clientWidth < 640 ? 'TB' : 'LR';
  const target = `${stateText}|${direction}`;
  // The latest state asked for wins, even over a drawing still being made for another.
  if (box.dataset.target === target) return;
  const m = mermaid();
  if (!m) {
    // Drawn once mermaid has loaded (the page asks again then).
    if (!box.firstChild) box.append(el('div', { class: 'muted', text: 'loading mermaid…' }));
    return;
  }
  box.dataset.target = target;
  const mine = String(++renderSeq);
  box.dataset.pending = mine;
  const id = `mmd${mine}`;
  m.render(id, toMermaid(machine, path, { direction, enclosing: 'currentParent' })).then(
    (out) => {
      if (box.dataset.pending !== mine) return;
      box.innerHTML = out.svg;
      // Scaled down to its box, but never below MIN_SCALE: past that the box scrolls instead.
      const svg = box.querySelector('svg');
      const width = svg ? svg.viewBox.baseVal.width : 0;
      if (svg && width > 0) svg.style.minWidth = `${Math.round(width * MIN_SCALE)}px`;
      box.dataset.state = stateText;
    },
    (err: unknown) => {
      document.getElementById(`d${id}`)?.remove();
      if (box.dataset.pending !== mine) return;
      delete box.dataset.target; // try again on the next refresh
      clear(box).append(el('div', { class: 'err', text: `cannot draw: ${err instanceof Error ? err.message : String(err)}` }));
    },
  );
}
