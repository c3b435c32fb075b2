/**
 * The page's link to the daemon: the event stream, and what the page believes about the daemon.
 *
 * - `live`: the stream is open. Any failed call or a stream error makes it `down` at once.
 * - `down`: nothing the page shows is current. It probes again after 1 s, 2 s, 4 s … (at most
 *   15 s); other polling waits meanwhile.
 * - Each (re)connection first reads the daemon's start time (`process_start_time_seconds` of
 *   /metrics): a different one means the daemon restarted, its event ids began again at 1, and
 *   the stream is opened from its start; otherwise it resumes after the last event seen, so
 *   nothing in the daemon's backlog is missed. On the first load the whole backlog is replayed:
 *   recent changes show at once.
 */
import { startTimeOf, type Api, type LoggedEvent } from './api.js';

export type LinkState = 'connecting' | 'live' | 'down';

/** What happened on a reconnection, for the log. */
export interface Reconnection {
  first: boolean;
  /** The daemon's start time changed since the last connection. */
  restarted: boolean;
  /** The daemon's start time (epoch seconds), when /metrics tells it. */
  startTime: number | null;
  /** How long the page was without the daemon, in seconds (0 on the first load). */
  downFor: number;
}

export interface ConnectionListener {
  /** The stream is open; everything shown should be read again. */
  live(info: Reconnection): void;
  /** The daemon cannot be reached: nothing shown is current. */
  down(since: number, reason: string): void;
  /** Each event of the stream, the backlog first. */
  event(event: LoggedEvent): void;
  /** The daemon no longer held events the page had not seen. */
  gap(info: { since: number; firstId: number }): void;
  /** The state or the next retry changed (for the header's badge). */
  changed(): void;
}

/** Every type of event the daemon sends: a type added to the API fails this check until it is listened to. */
const LISTENED: Record<LoggedEvent['type'], true> = { transition: true, file: true, progress: true, actor: true };
const EVENT_TYPES = Object.keys(LISTENED) as LoggedEvent['type'][];
const FIRST_DELAY = 1000;
const MAX_DELAY = 15_000;

export class Connection {
  state: LinkState = 'connecting';
  /** Since when the daemon has been out of reach (epoch ms); null while live. */
  downSince: number | null = null;
  /** When the next attempt is due (epoch ms), while `down`. */
  retryAt: number | null = null;
  private source: EventSource | null = null;
  private lastId = 0;
  private startTime: number | null = null;
  private connectedOnce = false;
  private delay = FIRST_DELAY;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** Counts attempts: an answer to an attempt that is no longer the latest is dropped. */
  private attempts = 0;

  constructor(
    private readonly api: Api,
    private readonly listener: ConnectionListener,
  ) {
    // A failed call while live means the daemon is gone; during an attempt, the attempt decides.
    api.onUnreachable = (reason) => {
      if (this.state === 'live') this.failed(reason);
    };
  }

  get live(): boolean {
    return this.state === 'live';
  }

  start(): void {
    void this.connect();
  }

  /** Tries at once instead of waiting for the next retry. */
  retryNow(): void {
    if (this.state !== 'down') return;
    this.delay = FIRST_DELAY;
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    this.state = 'connecting';
    this.listener.changed();
    const attempt = ++this.attempts;
    const metrics = await this.api.metrics();
    if (attempt !== this.attempts) return;
    if (!metrics.ok && metrics.status === 0) {
      this.failed(metrics.reason);
      return;
    }
    // Without /metrics (a proxy that only passes the API), a restart cannot be told.
    const startTime = metrics.ok ? startTimeOf(metrics.body) : null;
    const restarted = this.connectedOnce && startTime !== null && this.startTime !== null && startTime !== this.startTime;
    // A restarted daemon numbers its events from 1 again: read its backlog from the start.
    if (restarted) this.lastId = 0;
    if (startTime !== null) this.startTime = startTime;
    this.open({ first: !this.connectedOnce, restarted, startTime });
  }

  /** The daemon could not be reached: down, and another attempt after a growing delay. */
  private failed(reason: string): void {
    this.attempts++;
    this.closeSource();
    const wasLive = this.state === 'live' || this.downSince === null;
    this.state = 'down';
    if (wasLive) {
      this.downSince = Date.now();
      this.delay = FIRST_DELAY;
      this.listener.down(this.downSince, reason);
    }
    this.retryAt = Date.now() + this.delay;
    this.retryTimer = setTimeout(() => void this.connect(), this.delay);
    this.delay = Math.min(MAX_DELAY, this.delay * 2);
    this.listener.changed();
  }

  private open(opening: { first: boolean; restarted: boolean; startTime: number | null }): void {
    this.closeSource();
    const source = new EventSource(this.api.eventsUrl(this.lastId));
    this.source = source;
    source.addEventListener('open', () => {
      if (source !== this.source) return;
      const downFor = this.downSince === null ? 0 : (Date.now() - this.downSince) / 1000;
      this.state = 'live';
      this.downSince = null;
      this.delay = FIRST_DELAY;
      this.connectedOnce = true;
      this.listener.changed();
      this.listener.live({ ...opening, downFor });
    });
    source.addEventListener('error', () => {
      // The browser would retry by itself, without backing off and without asking whether the
      // daemon restarted: the page does it instead.
      if (source === this.source) this.failed('the event stream closed');
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (m: MessageEvent<string>) => {
        if (source !== this.source) return;
        const event = JSON.parse(m.data) as LoggedEvent;
        if (event.id > this.lastId) this.lastId = event.id;
        this.listener.event(event);
      });
    }
    source.addEventListener('gap', (m: MessageEvent<string>) => {
      if (source !== this.source) return;
      const info = JSON.parse(m.data) as { since: number; firstId: number };
      // On a first load (since 0) the older events were never the page's to miss.
      if (info.since > 0) this.listener.gap(info);
    });
  }

  private closeSource(): void {
    this.source?.close();
    this.source = null;
  }
}
