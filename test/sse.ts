import { until } from './helpers.js';

/** One Server-Sent Event as a client sees it. */
export interface SseEvent {
  /** The `id:` field, as a number; null when the event had none (a `gap`). */
  id: number | null;
  /** The `event:` field (`message` when absent). */
  event: string;
  /** The `data:` lines joined, parsed as JSON when they are JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
}

/**
 * A streaming `fetch` of an event stream, parsed by hand (no EventSource): every event, every
 * comment line and the `retry:` field are kept in order as they arrive.
 */
export class SseStream {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | null = null;
  /** Whether the server ended the stream. */
  ended = false;
  private readonly reading: Promise<void>;

  private constructor(
    readonly url: string,
    readonly status: number,
    readonly headers: Headers,
    private readonly controller: AbortController,
    body: ReadableStream<Uint8Array>,
  ) {
    this.reading = this.read(body);
  }

  /** Connects; resolves once the response headers are in. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
    const controller = new AbortController();
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
    if (!res.body) throw new Error(`no body from ${url}`);
    return new SseStream(url, res.status, res.headers, controller, res.body);
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let id: string | null = null;
    let event = '';
    let data: string[] = [];
    const line = (text: string) => {
      if (text === '') {
        if (data.length > 0 || id !== null) {
          const joined = data.join('\n');
          let parsed: unknown = joined;
          try {
            parsed = JSON.parse(joined);
          } catch {
            // not JSON: kept as text
          }
          this.events.push({ id: id === null ? null : Number(id), event: event || 'message', data: parsed });
        }
        id = null;
        event = '';
        data = [];
        return;
      }
      if (text.startsWith(':')) {
        this.comments.push(text.slice(1).trim());
        return;
      }
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry') this.retry = Number(value);
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          line(buffer.slice(0, nl).replace(/\r$/, ''));
          buffer = buffer.slice(nl + 1);
        }
      }
      this.ended = true;
    } catch {
      // aborted by close()
    }
  }

  /** The ids of the events received so far (those that carry one), in order. */
  ids(): number[] {
    return this.events.flatMap((e) => (e.id === null ? [] : [e.id]));
  }

  /** The newest id received, or 0. */
  lastId(): number {
    const ids = this.ids();
    return ids.length ? ids[ids.length - 1] : 0;
  }

  /** Waits until an event received so far matches `predicate`; returns it. */
  async waitFor(what: string, predicate: (e: SseEvent) => boolean, timeout = 20_000): Promise<SseEvent> {
    try {
      return (await until(`${what} on ${this.url}`, () => this.events.find(predicate), timeout))!;
    } catch (err) {
      throw new Error(`${(err as Error).message}; received: ${this.events.map((e) => JSON.stringify(e.data)).join('\n')}`);
    }
  }

  /** Aborts the connection; resolves once nothing more will be parsed. */
  async close(): Promise<void> {
    this.controller.abort();
    await this.reading;
  }

  /** Resolves once the server ended the stream. */
  async closed(): Promise<void> {
    await this.reading;
  }
}

/** Matches a `transition` event of an actor, optionally with its from/to. */
export const transition =
  (actor: string, to?: string, from?: string | null) =>
  (e: SseEvent): boolean =>
    e.event === 'transition' &&
    e.data?.actor === actor &&
    (to === undefined || e.data.to === to) &&
    (from === undefined || e.data.from === from);

/** Matches a `file` event of a kind, entry and path. */
export const fileEvent =
  (kind: string, entry: string, path: string) =>
  (e: SseEvent): boolean =>
    e.event === 'file' && e.data?.kind === kind && e.data.entry === entry && e.data.path === path;
