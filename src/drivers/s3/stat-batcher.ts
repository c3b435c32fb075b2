import type { RemoteStat } from '../remote/backend.js';

/** One page of a listing under a prefix, direct children only. */
export type ListPage = (prefix: string, token?: string) => Promise<{ items: { key: string; stat: RemoteStat }[]; next?: string }>;

/** Pages one batch may list before its remaining keys are asked one by one. */
const MAX_PAGES = 2;

/**
 * HEAD requests of one turn of the event loop, gathered: the keys asked in one folder are
 * answered by one listing of their common prefix (S3 gives in a listing what HEAD gives:
 * size, LastModified, ETag). A copy of many small files then costs about one request a file
 * (its PUT) instead of three (HEAD before, PUT, HEAD after); a key alone in its folder, or not
 * found in the pages listed, is asked with HEAD.
 */
export class StatBatcher {
  private pending = new Map<string, { resolve: (s: RemoteStat | null) => void; reject: (e: unknown) => void }[]>();
  private scheduled = false;

  constructor(
    private readonly head: (key: string) => Promise<RemoteStat | null>,
    private readonly list: ListPage,
  ) {}

  stat(key: string): Promise<RemoteStat | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.pending.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    this.scheduled = false;
    const folders = new Map<string, string[]>();
    for (const key of batch.keys()) {
      const folder = key.slice(0, key.lastIndexOf('/') + 1);
      folders.set(folder, [...(folders.get(folder) ?? []), key]);
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
      [...folders.values()].map(async (keys) => {
        if (keys.length === 1) return one(keys[0]);
        const prefix = commonPrefix(keys);
        const wanted = new Set(keys);
        try {
          let token: string | undefined;
          let pages = 0;
          do {
            const page = await this.list(prefix, token);
            for (const { key, stat } of page.items) {
              if (!wanted.has(key)) continue;
              wanted.delete(key);
              settle(key, { stat });
            }
            token = page.next;
          } while (token && wanted.size > 0 && ++pages < MAX_PAGES);
          // A whole listing without the key: it is not there. A cut one: asked one by one.
          await Promise.all([...wanted].map((key) => (token ? one(key) : settle(key, { stat: null }))));
        } catch (error) {
          for (const key of wanted) settle(key, { error });
        }
      }),
    );
  }
}

function commonPrefix(keys: string[]): string {
  let prefix = keys[0];
  for (const k of keys) {
    let i = 0;
    while (i < prefix.length && i < k.length && prefix[i] === k[i]) i++;
    prefix = prefix.slice(0, i);
  }
  return prefix;
}
