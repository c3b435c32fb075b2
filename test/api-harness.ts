import fsp from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { pino } from 'pino';
import { afterEach, beforeEach, expect } from 'vitest';
import { Daemon } from '../src/daemon.js';
import { SPEC_RULES, tempDir, until, writeSetup } from './helpers.js';

export const API = '/api/v1.0';

export interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  headers: Record<string, unknown>;
}

export interface Harness {
  /** The temp folder holding setup.json, the roots A and B and the store. */
  dir: string;
  setupFile: string;
  daemon: Daemon;
  /** A request through `app.inject`; checks the headers every answer must carry. */
  call(method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: unknown, headers?: Record<string, string>): Promise<Answer>;
  /** Stops the running daemon and starts a new one on the same setup and data folder. */
  restartDaemon(): Promise<void>;
  /** Writes a file under an entry's root, creating its folders. */
  write(entry: string, filename: string, content: string | Buffer): Promise<void>;
  /** Waits until GET /files (all of them) answers exactly `files`. */
  filesSettle(files: unknown[], timeout?: number): Promise<void>;
}

const startDaemon = (setupFile: string) =>
  Daemon.start({ setupFile, port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }) });

/**
 * A real daemon, started in-process for each test on a fresh temp folder with entries A and B
 * (local_storage, roots "A" and "B") and the spec's rules; stopped and removed after it.
 */
export function apiHarness(): Harness {
  const h = {} as Harness;
  let daemon: Daemon | null = null;

  beforeEach(async () => {
    h.dir = await tempDir('ferry-api-');
    h.setupFile = await writeSetup(h.dir, { entries: { A: 'A', B: 'B' }, rules: SPEC_RULES });
    daemon = await startDaemon(h.setupFile);
  });

  afterEach(async () => {
    await daemon?.stop();
    daemon = null;
    await fsp.rm(h.dir, { recursive: true, force: true });
  });

  Object.defineProperty(h, 'daemon', { get: () => daemon! });

  h.call = async (method, url, payload, headers = {}) => {
    const res = await daemon!.app.inject({
      method,
      url,
      headers: { accept: 'application/json', ...headers },
      ...(payload === undefined ? {} : { payload: payload as string }),
    });
    expect(res.headers.vary, `vary of ${method} ${url}`).toBe('Accept');
    expect(res.headers['content-type'], `content-type of ${method} ${url}`).toBe('application/json; charset=utf-8');
    return { status: res.statusCode, body: res.json(), headers: res.headers };
  };

  h.restartDaemon = async () => {
    await daemon?.stop();
    daemon = null;
    daemon = await startDaemon(h.setupFile);
  };

  h.write = async (entry, filename, content) => {
    const file = path.join(h.dir, entry, filename);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(file, content);
  };

  h.filesSettle = async (files, timeout = 30_000) => {
    let last: unknown;
    await until(
      `GET /files to list ${JSON.stringify(files)}`,
      async () => {
        const res = await h.call('GET', `${API}/files?limit=1000`);
        last = res.body;
        return res.status === 200 && isDeepStrictEqual(res.body, { files });
      },
      timeout,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last answer: ${JSON.stringify(last)}`);
    });
  };

  return h;
}

/** The `{"reason", "status": "error"}` body with a reason containing every given fragment. */
export const errorWith = (...fragments: string[]) => ({
  reason: expect.toSatisfy((r: unknown) => typeof r === 'string' && fragments.every((f) => r.includes(f)), `a reason containing ${fragments.join(', ')}`),
  status: 'error',
});

/** A time in epoch seconds, taken during the test. */
export const nowish = (since: number) =>
  expect.toSatisfy((t: unknown) => typeof t === 'number' && t >= since / 1000 - 1 && t <= Date.now() / 1000 + 1, 'a time in epoch seconds');
