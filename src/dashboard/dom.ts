/** Building the page's elements: text is always set as text, never parsed as HTML. */

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | number | boolean | null | undefined | ((event: Event) => void)>;

export function $(id: string): HTMLElement {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

/** `el('td', {class: 'num', text: '3'})`; `on…` attributes become listeners. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attributes | null, children: Child[] = []): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = String(v);
    else if (k === 'class') node.className = String(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export function clear<T extends Node>(node: T): T {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** A filename that may wrap after each `/` (and anywhere inside a very long segment). */
export function filenameNode(filename: string): HTMLSpanElement {
  const span = el('span', { class: 'filename', title: filename });
  filename.split('/').forEach((part, i, parts) => {
    span.append(part + (i < parts.length - 1 ? '/' : ''));
    if (i < parts.length - 1) span.append(document.createElement('wbr'));
  });
  return span;
}

export type MessageKind = 'ok' | 'error' | 'muted' | '';

/** A one-line message under a control; `data-kind` lets a reconnect clear stale errors. */
export function setMessage(node: HTMLElement, kind: MessageKind, text: string, cause?: 'unreachable'): void {
  node.className = `message ${kind}`;
  node.textContent = text;
  if (cause) node.dataset.cause = cause;
  else delete node.dataset.cause;
}
