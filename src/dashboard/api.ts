/**
 * The API as the page calls it: paths relative to the page (`api/v1.0/…`, `metrics`), so that
 * it also works behind a prefix; the token, if the daemon wants one; and every answer as a
 * value, never a rejection. A status of 0 means the daemon could not be reached, and the
 * connection hears of it.
 */
import type { Conflicts, Entries, Files, Machines, Rules, RulesDiff, Transfers } from '../api/schemas.js';
import type { LoggedEvent } from '../observe/event-log.js';

export type { Conflict, Entry, EntryStats, ListedFile, Machines, Transfers } from '../api/schemas.js';
export type { LoggedEvent };

const API = 'api/v1.0';

/** What each GET route answers. */
export interface Routes {
  '/entries': Entries;
  '/files': Files;
  '/conflicts': Conflicts;
  '/transfers': Transfers;
  '/debug/machines': Machines;
  '/rules': Rules;
  '/rules/diff': RulesDiff;
}

export type Answer<T> = { ok: true; status: number; body: T } | { ok: false; status: number; reason: string };

/** A daemon started with --token wants it on every call: taken from ?token= once, then remembered. */
function initialToken(): string {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) localStorage.setItem('ferry.token', fromUrl);
  return fromUrl ?? localStorage.getItem('ferry.token') ?? '';
}

export class Api {
  readonly token = initialToken();
  private askedToken = false;
  /** Told of every call that could not reach the daemon. */
  onUnreachable: (reason: string) => void = () => undefined;

  async call<T>(method: 'GET' | 'PUT', route: string, body?: unknown): Promise<Answer<T>> {
    const answer = await this.fetch(`${API}${route}`, method, body);
    if (!answer.ok) return answer;
    try {
      return { ok: true, status: answer.status, body: (answer.body ? JSON.parse(answer.body) : null) as T };
    } catch {
      return { ok: false, status: answer.status, reason: answer.body };
    }
  }

  get<K extends keyof Routes>(route: K | `${K}?${string}`): Promise<Answer<Routes[K]>> {
    return this.call<Routes[K]>('GET', route);
  }

  /** The daemon's Prometheus text (`/metrics`, beside the API). */
  metrics(): Promise<Answer<string>> {
    return this.fetch('metrics', 'GET');
  }

  /** The event stream's URL: EventSource sends no headers, so the token goes in the URL. */
  eventsUrl(since: number): string {
    const query = new URLSearchParams({ since: String(since) });
    if (this.token) query.set('access_token', this.token);
    return `${API}/events?${query.toString()}`;
  }

  private async fetch(url: string, method: string, body?: unknown): Promise<Answer<string>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
      text = await res.text();
    } catch (err) {
      const reason = `the daemon is unreachable (${err instanceof Error ? err.message : String(err)})`;
      this.onUnreachable(reason);
      return { ok: false, status: 0, reason };
    }
    if (res.status === 401) this.askToken();
    if (res.ok) return { ok: true, status: res.status, body: text };
    return { ok: false, status: res.status, reason: reasonOf(text, res.status) };
  }

  private askToken(): void {
    if (this.askedToken) return;
    this.askedToken = true;
    const given = window.prompt('This Ferry daemon needs its API token:');
    if (given) {
      localStorage.setItem('ferry.token', given);
      location.reload();
    }
  }
}

/** The API's `reason`, or what the status says. */
function reasonOf(text: string, status: number): string {
  try {
    const body = JSON.parse(text) as { reason?: unknown };
    if (typeof body.reason === 'string') return body.reason;
  } catch {
    // not JSON: the text itself, if any
  }
  return text || `HTTP ${status}`;
}

/** `process_start_time_seconds` of the daemon's /metrics: when it started, epoch seconds. */
export function startTimeOf(metrics: string): number | null {
  const m = /^process_start_time_seconds(?:\{\})? ([0-9.e+]+)$/m.exec(metrics);
  return m ? Number(m[1]) : null;
}
