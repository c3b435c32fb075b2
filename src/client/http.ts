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
      throw usage(`--api: must be an http or https URL (got ${url})`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw usage(`--api: must be an http or https URL (got ${url})`);
    this.base = url.replace(/\/+$/, '');
  }

  async request<T = unknown>(method: string, route: string, body?: unknown): Promise<T> {
    const url = `${this.base}/api/v1.0${route}`;
    let response: { status: number; text: string };
    try {
      response = await send(url, method, {
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      }, body === undefined ? undefined : JSON.stringify(body));
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new CliError(EXIT.unreachable, `cannot reach the daemon at ${this.base} (${why}); is it running?`);
    }
    let json: unknown;
    try {
      json = response.text ? JSON.parse(response.text) : null;
    } catch {
      throw new CliError(EXIT.unreachable, `${url} did not answer with JSON (is ${this.base} a Ferry daemon?)`);
    }
    if (response.status < 200 || response.status > 299) {
      const reason = (json as { reason?: string } | null)?.reason ?? `HTTP ${response.status}`;
      throw new CliError(EXIT.refused, reason);
    }
    return json as T;
  }
}

/** How long one request may take: a rescan or a rules reload of many files takes a while. */
const REQUEST_TIMEOUT_MS = 120_000;

/**
 * One HTTP request with node:http (node:https for https URLs, loaded only then): a client
 * command makes a few requests and exits, and the global fetch alone (undici) would take longer
 * to load than the command takes to run.
 */
async function send(url: string, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string }> {
  const target = new URL(url);
  const { request } = target.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(target, { method, headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) } });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end(body);
  });
}
