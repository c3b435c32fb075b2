/**
 * A machine's definition (`machine.toJSON()`) as a mermaid `stateDiagram-v2`, which pastes
 * into any Markdown renderer. `current`, a state path like ['active', 'running'], is marked
 * with the class `current` (each state on the path), for a live view.
 *
 * The one implementation: the API's `/debug/machines`, the `ferry machines` command and the
 * dashboard (bundled into the page from this file) all draw with it. It uses nothing of Node
 * or of the browser.
 */

interface StateJson {
  key: string;
  id: string;
  type?: string;
  initial?: unknown;
  description?: string;
  states?: Record<string, StateJson>;
  transitions?: { eventType: string; target?: string[]; guard?: string | { type?: string } | null; reenter?: boolean }[];
  after?: { delay?: unknown; eventType: string }[];
}

/** Mermaid state ids: letters, digits and underscores only. */
const idOf = (node: StateJson) => node.id.replace(/[^A-Za-z0-9_]/g, '_');

const label = (text: string) => text.replace(/[:;#"]/g, ' ').trim();

function initialKey(node: StateJson): string | undefined {
  const initial = node.initial as { target?: string[] } | string | undefined;
  if (typeof initial === 'string') return initial;
  const target = initial?.target?.[0];
  return target?.split('.').pop();
}

/** The event a transition reacts to, readable: `xstate.after.backoff.entry.restarting` → `after backoff`. */
function eventLabel(eventType: string): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  if (eventType.startsWith('xstate.done.actor')) return 'done';
  if (eventType.startsWith('xstate.error.actor')) return 'error';
  return eventType;
}

export interface MermaidOptions {
  /** A `direction` line: mermaid lays states out top to bottom without one. */
  direction?: 'LR' | 'TB';
  /**
   * How the states around the current one are marked: `current` like it (the default), or
   * `currentParent`, a class of their own, so that a live view can tell the innermost state
   * from the composite states holding it.
   */
  enclosing?: 'current' | 'currentParent';
}

export function toMermaid(definition: unknown, current: string[] = [], options: MermaidOptions = {}): string {
  // toJSON() holds state nodes where JSON holds their ids: work on the JSON form.
  const machine = JSON.parse(JSON.stringify(definition)) as StateJson;
  const lines = ['stateDiagram-v2'];
  if (options.direction) lines.push(`  direction ${options.direction}`);
  const byId = new Map<string, StateJson>();
  const walkIds = (node: StateJson) => {
    byId.set(`#${node.id}`, node);
    for (const child of Object.values(node.states ?? {})) walkIds(child);
  };
  walkIds(machine);

  const declare = (node: StateJson, indent: string) => {
    const children = Object.values(node.states ?? {});
    const initial = initialKey(node);
    for (const child of children) {
      const id = idOf(child);
      if (child.states && Object.keys(child.states).length > 0) {
        // Titled by its key, not its id: the box reads "active", not "entry_active".
        lines.push(`${indent}state "${label(child.key)}" as ${id} {`);
        declare(child, indent + '  ');
        lines.push(`${indent}}`);
      } else {
        lines.push(`${indent}${id} : ${label(child.key)}`);
      }
      if (child.key === initial) lines.push(`${indent}[*] --> ${id}`);
    }
  };
  declare(machine, '  ');

  // One edge per pair of states, its label every transition between them: parallel edges would
  // each take their own lane, and make the drawing far wider than the chart.
  const byPair = new Map<string, string[]>();
  const edges = (node: StateJson) => {
    for (const t of node.transitions ?? []) {
      if (node === machine) continue; // root-level events are handled in every state
      const targets = t.target?.length ? t.target : t.reenter ? [`#${node.id}`] : [];
      for (const target of targets) {
        const to = byId.get(target);
        if (!to) continue;
        // toJSON() gives a named guard as its name; a guard with params as {type, params}.
        const guardName = typeof t.guard === 'string' ? t.guard : t.guard?.type;
        const guard = guardName ? ` [${guardName}]` : '';
        const pair = `${idOf(node)} --> ${idOf(to)}`;
        const labels = byPair.get(pair) ?? [];
        if (labels.length === 0) byPair.set(pair, labels);
        labels.push(label(eventLabel(t.eventType) + guard));
      }
    }
    for (const child of Object.values(node.states ?? {})) edges(child);
  };
  edges(machine);
  for (const [pair, labels] of byPair) lines.push(`  ${pair} : ${labels.join(', ')}`);

  if (current.length > 0) {
    const enclosing = options.enclosing ?? 'current';
    lines.push('  classDef current fill:#ffd866,stroke:#b8860b,stroke-width:3px,color:#000');
    if (enclosing !== 'current') lines.push(`  classDef ${enclosing} fill:#fff8e1,stroke:#b8860b,stroke-width:2px`);
    let node: StateJson | undefined = machine;
    for (const [i, key] of current.entries()) {
      node = node?.states?.[key];
      if (!node) break;
      lines.push(`  class ${idOf(node)} ${i === current.length - 1 ? 'current' : enclosing}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** A state value (`'stopped'`, `{active: 'running'}`) as a path: `['active', 'running']`. */
export function statePath(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (value && typeof value === 'object') {
    const [key] = Object.keys(value);
    return key === undefined ? [] : [key, ...statePath((value as Record<string, unknown>)[key])];
  }
  return [];
}
