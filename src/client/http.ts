/** Exit codes of the `ferry` command, documented in `ferry --help` and the README. */
export const EXIT = {
  ok: 0,
  /** The daemon refused (its reason is printed). */
  refused: 1,
  usage: 2,
  unreachable: 3,
  timeout: 4,
} as const;

/** A failure that ends the command with `code` and prints `message` on stderr. */
export class CliError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string) => new CliError(EXIT.usage, message);

export const DEFAULT_API = 'http://127.0.0.1:3862';

/** A client of the daemon's REST API. Every failure becomes a CliError with its exit code. */
export class ApiClient {
  readonly base: string;

  constructor(
    url: string,
    private readonly token?: string,
  ) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw usage(`--api: not a URL: ${url}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw usage(`--api: not an http URL: ${url}`);
    this.base = url.replace(/\/+$/, '');
  }

  async request<T = unknown>(method: string, route: string, body?: unknown): Promise<T> {
    const url = `${this.base}/api/v1.0${route}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(120_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new CliError(EXIT.unreachable, `cannot reach the daemon at ${this.base} (${why}); is it running?`);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      throw new CliError(EXIT.unreachable, `${url} did not answer with JSON (is ${this.base} a Ferry daemon?)`);
    }
    if (!response.ok) {
      const reason = (json as { reason?: string } | null)?.reason ?? `HTTP ${response.status}`;
      throw new CliError(EXIT.refused, reason);
    }
    return json as T;
  }
}
