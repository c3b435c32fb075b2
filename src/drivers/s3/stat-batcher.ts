import type { RemoteStat } from '../remote/backend.js';

/**
 * One page of a listing of one folder (its direct children), from just after `startAfter` (or
 * from where `token` left off), at most `maxKeys` keys.
 */
export type ListPage = (
  folder: string,
  from: { startAfter: string; token?: undefined } | { token: string; startAfter?: undefined },
  maxKeys: number,
) => Promise<{ items: { key: string; stat: RemoteStat }[]; next?: string }>;

/** Keys of one folder asked at once that one listing answers; fewer are asked with HEAD. */
const LIST_MIN = 3;
/** Keys a listing may hold beyond those asked (other files between them) before the rest are asked one by one. */
const SLACK = 32;
/** Pages one listing may take before the keys it has not reached are asked one by one. */
const MAX_PAGES = 2;
/** Keys asked at once past which a gathering batch goes without waiting. */
const BATCH_MAX = 256;

/** S3 orders keys by their UTF-8 bytes. */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * The HEAD requests asked close together, gathered: the keys asked in one folder are answered by
 * one listing of that folder (S3 gives in a listing what HEAD gives: size, LastModified, ETag),
 * from just before the first of them to the last, so that the server reads no more of the folder
 * than those keys and the few between them. A key alone (or two) in its folder is asked with
 * HEAD, and so is one a listing did not reach.
 *
 * A stat asked `later` (the stat of a file just uploaded) waits a few milliseconds for others:
 * copies finish one by one, and a listing answers many of them for the price of one request.
 */
export class StatBatcher {
  private pending = new Map<string, { resolve: (s: RemoteStat | null) => void; reject: (e: unknown) => void }[]>();
  private immediate: NodeJS.Immediate | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly head: (key: string) => Promise<RemoteStat | null>,
    private readonly list: ListPage,
    /** How long a `later` stat waits for others (ms). */
    private readonly gatherMs = 5,
  ) {}

  stat(key: string, later = false): Promise<RemoteStat | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.pending.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      if (!later || this.pending.size >= BATCH_MAX) {
        this.immediate ??= setImmediate(() => void this.flush());
      } else if (!this.timer && !this.immediate) {
        this.timer = setTimeout(() => void this.flush(), this.gatherMs);
      }
    });
  }

  private async flush(): Promise<void> {
    if (this.immediate) clearImmediate(this.immediate);
    if (this.timer) clearTimeout(this.timer);
    this.immediate = null;
    this.timer = null;
    const batch = this.pending;
    this.pending = new Map();
    const folders = new Map<string, string[]>();
    for (const key of batch.keys()) {
      const folder = key.slice(0, key.lastIndexOf('/') + 1);
      const keys = folders.get(folder);
      if (keys) keys.push(key);
      else folders.set(folder, [key]);
    }
    const settle = (key: string, result: { stat: RemoteStat | null } | { error: unknown }) => {
      for (const w of batch.get(key) ?? []) {
        if ('error' in result) w.reject(result.error);
        else w.resolve(result.stat);
      }
    };
    const one = (key: string) =>
      this.head(key).then(
        (stat) => settle(key, { stat }),
        (error) => settle(key, { error }),
      );
    await Promise.all(
      [...folders].map(async ([folder, keys]) => {
        if (keys.length < LIST_MIN) return Promise.all(keys.map(one));
        keys.sort(byBytes);
        const wanted = new Set(keys);
        const last = keys[keys.length - 1];
        // Just before the first key: the first key less its last character.
        const startAfter = Array.from(keys[0]).slice(0, -1).join('');
        try {
          let token: string | undefined;
          let pages = 0;
          let passed = false;
          do {
            const page = await this.list(folder, token ? { token } : { startAfter }, Math.min(1000, keys.length + SLACK));
            for (const { key, stat } of page.items) {
              if (!wanted.delete(key)) continue;
              settle(key, { stat });
            }
            const end = page.items.at(-1)?.key;
            passed = end !== undefined && byBytes(end, last) >= 0;
            token = page.next;
          } while (token && wanted.size > 0 && !passed && ++pages < MAX_PAGES);
          // The folder listed to its end without the key: it is not there. Otherwise asked one by one.
          await Promise.all([...wanted].map((key) => (token ? one(key) : settle(key, { stat: null }))));
        } catch (error) {
          for (const key of wanted) settle(key, { error });
        }
      }),
    );
  }
}
