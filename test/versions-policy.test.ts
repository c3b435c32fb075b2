import { describe, expect, it } from 'vitest';
import {
  dropAll,
  dropForFile,
  dropOverTotal,
  nextChange,
  parseDurationText,
  parseSizeText,
  resolvePolicy,
  type KeptVersion,
  type VersionPolicy,
} from '../src/versions/policy.js';
import { parseVersionKey, versionKey, versionName } from '../src/versions/names.js';
import { VersionKeeper, type VersionChange } from '../src/versions/keeper.js';
import { until } from './helpers.js';

/**
 * The versions policy with the time given: what it keeps and drops at each moment, on versions
 * made up here (no disk, no clock).
 */

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
const D = 24 * H;
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

const policy = (raw: unknown): VersionPolicy => {
  const r = resolvePolicy(raw);
  if (!r.ok) throw new Error(r.reason);
  return r.value!;
};

/** A version of `filename` kept `ago` ms before NOW. */
const v = (filename: string, ago: number, size = 10): KeptVersion => ({ key: versionKey(filename, NOW - ago, 'overwritten'), filename, time: NOW - ago, size });
const ages = (list: KeptVersion[]) => list.map((x) => NOW - x.time);

describe('resolvePolicy', () => {
  it('defaults to 30 days, 10 per file, 1 GiB; "off" keeps nothing', () => {
    expect(resolvePolicy(undefined)).toEqual({ ok: true, value: { keepMs: 30 * D, maxPerFile: 10, maxTotal: 2 ** 30, staggered: null } });
    expect(resolvePolicy('off')).toEqual({ ok: true, value: null });
    // A key left out takes its default.
    expect(policy({ keep: '2s' })).toEqual({ keepMs: 2 * S, maxPerFile: 10, maxTotal: 2 ** 30, staggered: null });
    expect(policy({ max_total: '500MiB', max_per_file: 3 })).toEqual({ keepMs: 30 * D, maxPerFile: 3, maxTotal: 500 * 2 ** 20, staggered: null });
    expect(policy({ staggered: [{ within: '1h' }, { within: '30d', every: '1d' }] }).staggered).toEqual([
      { withinMs: H, everyMs: 0 },
      { withinMs: 30 * D, everyMs: D },
    ]);
  });

  it('names the faulty key, and a close known one for a typo', () => {
    const reason = (raw: unknown) => (resolvePolicy(raw) as { reason: string }).reason;
    expect(reason('on')).toMatch(/^must be "off" or an object/);
    expect(reason({ kep: '1d' })).toBe('kep: unknown key (did you mean "keep"?)');
    expect(reason({ max_per_fil: 3 })).toBe('max_per_fil: unknown key (did you mean "max_per_file"?)');
    expect(reason({ keep: 'forever' })).toMatch(/^keep: must be a duration/);
    expect(reason({ keep: '0s' })).toMatch(/^keep: must be a duration/);
    expect(reason({ max_per_file: 0 })).toBe('max_per_file: must be a whole number, 1 or more');
    expect(reason({ max_per_file: 2.5 })).toBe('max_per_file: must be a whole number, 1 or more');
    expect(reason({ max_total: '1 GiBs' })).toMatch(/^max_total: must be a size/);
    expect(reason({ staggered: [] })).toMatch(/^staggered: must be a list of bands/);
    expect(reason({ staggered: [{ within: '1d' }, { within: '1h' }] })).toBe('staggered[1].within: must be longer than the band before it');
    expect(reason({ staggered: [{ within: '1d', evry: '1h' }] })).toBe('staggered[0].evry: unknown key (did you mean "every"?)');
    expect(reason({ staggered: [{ every: '1h' }] })).toMatch(/^staggered\[0\]\.within: must be a duration/);
  });

  it('reads durations and sizes as people write them', () => {
    expect([parseDurationText('30d'), parseDurationText('12h'), parseDurationText('90m'), parseDurationText('2s'), parseDurationText('1w')]).toEqual([
      30 * D,
      12 * H,
      90 * MIN,
      2 * S,
      7 * D,
    ]);
    expect([parseDurationText('500ms'), parseDurationText(3), parseDurationText('3'), parseDurationText('x'), parseDurationText('-1s')]).toEqual([500, 3 * S, 3 * S, null, null]);
    expect([parseSizeText('1GiB'), parseSizeText('10MB'), parseSizeText('1.5KiB'), parseSizeText(4096), parseSizeText('2 kb')]).toEqual([2 ** 30, 1e7, 1536, 4096, 2000]);
    expect([parseSizeText('1GB!'), parseSizeText('lots'), parseSizeText(-1)]).toEqual([null, null, null]);
  });
});

describe('what a policy drops, at a given time', () => {
  it('drops what is older than keep, and nothing younger', () => {
    const p = policy({ keep: '2s' });
    const list = [v('a', 500), v('a', 1999), v('a', 2001), v('a', 10 * S)];
    expect(ages(dropForFile(list, p, NOW))).toEqual([10 * S, 2001]);
    // Two seconds on, the young ones are gone too.
    expect(dropForFile(list, p, NOW + 2 * S)).toHaveLength(4);
  });

  it('keeps the newest max_per_file of each file', () => {
    const p = policy({ max_per_file: 3 });
    const list = [1, 2, 3, 4, 5].map((m) => v('a', m * MIN));
    expect(ages(dropForFile(list, p, NOW))).toEqual([5 * MIN, 4 * MIN]);
    // The other file's versions count apart.
    const { expired } = dropAll([...list, v('b', 10 * MIN), v('b', 20 * MIN)], p, NOW);
    expect(expired.map((x) => x.filename)).toEqual(['a', 'a']);
  });

  it('staggers: all of the last hour, one a day for a month, nothing older', () => {
    const p = policy({ keep: '365d', max_per_file: 1000, staggered: [{ within: '1h' }, { within: '30d', every: '1d' }] });
    const list = [
      // the last hour: every one kept
      v('a', 1 * MIN),
      v('a', 2 * MIN),
      v('a', 59 * MIN),
      // day 3: three versions within a day of each other, the oldest kept
      v('a', 3 * D),
      v('a', 3 * D - 2 * H),
      v('a', 3 * D - 20 * H),
      // day 10, a day and more after the last kept: kept
      v('a', 10 * D),
      // beyond the last band
      v('a', 31 * D),
    ];
    expect(ages(dropForFile(list, p, NOW)).sort((x, y) => x - y)).toEqual([3 * D - 20 * H, 3 * D - 2 * H, 31 * D]);
  });

  it('drops the oldest first until the entry fits in max_total, whatever the file', () => {
    const p = policy({ max_total: '100B' });
    const list = [v('a', 5 * MIN, 40), v('b', 4 * MIN, 40), v('a', 3 * MIN, 40), v('c', 1 * MIN, 30)];
    expect(ages(dropOverTotal(list, p))).toEqual([5 * MIN, 4 * MIN]);
    expect(dropOverTotal(list.slice(1), p)).toHaveLength(1);
    expect(dropOverTotal(list.slice(2), p)).toHaveLength(0);
  });

  it('says when its decision changes next: a version reaching keep, or crossing into another band', () => {
    const p = policy({ keep: '2s' });
    expect(nextChange([v('a', 500), v('b', 1500)], p, NOW)).toBe(NOW + 501);
    expect(nextChange([], p, NOW)).toBeNull();
    const stagger = policy({ keep: '30d', staggered: [{ within: '1h' }, { within: '30d', every: '1d' }] });
    expect(nextChange([v('a', 59 * MIN)], stagger, NOW)).toBe(NOW + MIN + 1);
  });
});

describe('version names', () => {
  it('name a version after its time (UTC) and reason, under a folder named after the file', () => {
    const time = Date.UTC(2026, 10, 29, 8, 30, 1, 123);
    expect(versionName(time, 'overwritten')).toBe('20261129-083001-123.overwritten');
    expect(versionKey('docs/a.txt', time, 'deleted', 2)).toBe('docs/a.txt/20261129-083001-123-2.deleted');
    expect(parseVersionKey('docs/a.txt/20261129-083001-123-2.deleted')).toEqual({ filename: 'docs/a.txt', time, reason: 'deleted' });
    // A file whose own name looks like a version's is still the file's name.
    expect(parseVersionKey('x/20261129-083001-123.deleted/20261129-083001-124.overwritten')!.filename).toBe('x/20261129-083001-123.deleted');
    for (const bad of ['20261129-083001-123.overwritten', 'a/b.txt', 'a/20261129-083001-123.moved', '../x/20261129-083001-123.deleted']) {
      expect(parseVersionKey(bad), bad).toBeNull();
    }
  });
});

describe('VersionKeeper', () => {
  /** A keeper over versions held in a Map, with the clock given. */
  function keeper(raw: unknown, held: Record<string, number> = {}) {
    const storage = new Map(Object.entries(held));
    const changes: VersionChange[] = [];
    const logs: string[] = [];
    let now = NOW;
    const k = new VersionKeeper(
      policy(raw),
      { list: () => [...storage].map(([key, size]) => ({ key, size })), remove: (key) => void storage.delete(key) },
      { entry: 'B', log: (_level, msg) => logs.push(msg), changed: (c) => changes.push(c) },
      () => now,
    );
    return { k, storage, changes, logs, tick: (ms: number) => (now += ms) };
  }

  it('drops at start what the policy no longer keeps, then tells every version it keeps', async () => {
    const old = versionKey('a', NOW - 3 * S, 'deleted');
    const young = versionKey('a', NOW - 1 * S, 'overwritten');
    const { k, storage, changes } = keeper({ keep: '2s' }, { [old]: 5, [young]: 7, 'not/a-version': 1 });
    await k.start();
    expect([...storage.keys()].sort()).toEqual([young, 'not/a-version']);
    expect(changes).toEqual([{ kept: [{ key: young, filename: 'a', time: NOW - S, size: 7, reason: 'overwritten' }], dropped: [], full: true }]);
    await k.stop();
  });

  it('applies max_per_file and max_total as versions come, telling each one kept and dropped', async () => {
    const { k, storage, changes, logs, tick } = keeper({ max_per_file: 2, max_total: '25B' });
    await k.start();
    const add = (filename: string, size: number) => {
      const { key, time } = k.keyFor(filename, 'overwritten');
      storage.set(key, size);
      k.added({ key, filename, time, size, reason: 'overwritten' });
      tick(10);
      return key;
    };
    const a1 = add('a', 10);
    const a2 = add('a', 10);
    const a3 = add('a', 10);
    await k.prune();
    expect(storage.has(a1)).toBe(false);
    expect([...storage.keys()]).toEqual([a2, a3]);
    const b1 = add('b', 10);
    await k.prune();
    // 30 bytes over 25: the oldest goes, whatever its file.
    expect([...storage.keys()]).toEqual([a3, b1]);
    expect(logs.some((l) => /over max_total \(25 B\): dropped the 1 oldest \(10 B\)/.test(l))).toBe(true);
    expect(changes.flatMap((c) => c.dropped)).toEqual([a1, a2]);
    expect(changes.flatMap((c) => c.kept.map((x) => x.key))).toEqual([a1, a2, a3, b1]);
    // One larger than max_total alone is never kept.
    expect(k.fits(26)).toBe(false);
    await k.stop();
  });

  it('drops versions as they age, on its own timer (the real clock)', async () => {
    const storage = new Map<string, number>();
    const changes: VersionChange[] = [];
    const k = new VersionKeeper(
      policy({ keep: '200ms' }),
      { list: () => [], remove: (key) => void storage.delete(key) },
      { entry: 'B', log: () => undefined, changed: (c) => changes.push(c) },
    );
    await k.start();
    const { key, time } = k.keyFor('a', 'deleted');
    storage.set(key, 1);
    k.added({ key, filename: 'a', time, size: 1, reason: 'deleted' });
    await until('the version to age out', () => !storage.has(key), 3000, 20);
    expect(Date.now() - time).toBeGreaterThanOrEqual(200);
    expect(changes.at(-1)).toEqual({ kept: [], dropped: [key] });
    await k.stop();
  });
});
