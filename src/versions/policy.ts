/**
 * What an entry keeps of the content a sync overwrites or deletes: the versions policy of the
 * setup (`"versions": {"keep": "30d", "max_per_file": 10, "max_total": "1GiB"}`, a staggered
 * one, or `"off"`), checked and resolved, and the pure decision of which versions it drops at a
 * given moment. No I/O and no clock here: any driver's worker (local, SFTP, S3) applies it to
 * the versions it keeps, and the tests give it the time.
 */
import { unknownName } from '../did-you-mean.js';

/** Why a version was kept. */
export type VersionReason = 'overwritten' | 'deleted';
export const VERSION_REASONS: readonly VersionReason[] = ['overwritten', 'deleted'];

/** One band of a staggered policy: versions younger than `withinMs` are kept one per `everyMs` (0: all). */
export interface StaggerBand {
  withinMs: number;
  everyMs: number;
}

/** A resolved policy; null limits are not applied. */
export interface VersionPolicy {
  /** Versions older than this are dropped. */
  keepMs: number | null;
  /** At most this many versions of one file, the newest. */
  maxPerFile: number | null;
  /** At most this many bytes of versions in the entry, the oldest dropped first. */
  maxTotal: number | null;
  /** Bands of increasing `withinMs`; a version older than the last band is dropped. */
  staggered: StaggerBand[] | null;
}

/** The setup's default, applied to every entry that says nothing of versions. */
export const DEFAULT_VERSIONS = { keep: '30d', max_per_file: 10, max_total: '1GiB' } as const;

/** The keys a versions policy may hold. */
export const POLICY_KEYS = ['keep', 'max_per_file', 'max_total', 'staggered'] as const;
const BAND_KEYS = ['within', 'every'] as const;

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30d`, `12h`, `90m`, `2s`, `1w`, `500ms` (a bare number is seconds) in milliseconds; null if it is none. */
export function parseDurationText(text: unknown): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text * 1000 : null;
  if (typeof text !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * UNITS_MS[m[2] ?? 's']!;
}

const UNITS_BYTES: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** `1GiB`, `500MiB`, `10MB`, `4096` (bytes) in bytes; null if it is none. */
export function parseSizeText(text: unknown): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? Math.floor(text) : null;
  if (typeof text !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?$/i.exec(text.trim());
  if (!m) return null;
  return Math.floor(Number(m[1]) * UNITS_BYTES[(m[2] ?? 'b').toLowerCase()]!);
}

type Resolved = { ok: true; value: VersionPolicy | null } | { ok: false; reason: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The policy of a setup's `versions` value (undefined: the default), or why it is wrong; the
 * reason starts with the faulty key (`keep: …`, `staggered[1].every: …`). `"off"` keeps nothing
 * (null). A key left out takes its default (`keep` 30 days, `max_per_file` 10, `max_total`
 * 1 GiB); `staggered` has none.
 */
export function resolvePolicy(raw: unknown): Resolved {
  if (raw === undefined) raw = DEFAULT_VERSIONS;
  if (raw === 'off') return { ok: true, value: null };
  if (!isObject(raw)) return { ok: false, reason: 'must be "off" or an object such as {"keep": "30d", "max_per_file": 10, "max_total": "1GiB"}' };
  for (const key of Object.keys(raw)) {
    if (!(POLICY_KEYS as readonly string[]).includes(key)) return { ok: false, reason: `${key}: ${unknownName(key, POLICY_KEYS)}` };
  }
  const keep = parseDurationText(raw.keep ?? DEFAULT_VERSIONS.keep);
  if (keep === null || keep <= 0) return { ok: false, reason: 'keep: must be a duration such as "30d", "12h", "90m" or "2s"' };
  const perFile = raw.max_per_file ?? DEFAULT_VERSIONS.max_per_file;
  if (typeof perFile !== 'number' || !Number.isInteger(perFile) || perFile < 1) {
    return { ok: false, reason: 'max_per_file: must be a whole number, 1 or more' };
  }
  const total = parseSizeText(raw.max_total ?? DEFAULT_VERSIONS.max_total);
  if (total === null || total <= 0) return { ok: false, reason: 'max_total: must be a size such as "1GiB", "500MiB" or "10MB"' };
  let staggered: StaggerBand[] | null = null;
  if (raw.staggered !== undefined) {
    if (!Array.isArray(raw.staggered) || raw.staggered.length === 0) {
      return { ok: false, reason: 'staggered: must be a list of bands such as [{"within": "1h"}, {"within": "30d", "every": "1d"}]' };
    }
    staggered = [];
    for (let i = 0; i < raw.staggered.length; i++) {
      const at = `staggered[${i}]`;
      const band: unknown = raw.staggered[i];
      if (!isObject(band)) return { ok: false, reason: `${at}: must be an object such as {"within": "30d", "every": "1d"}` };
      for (const key of Object.keys(band)) {
        if (!(BAND_KEYS as readonly string[]).includes(key)) return { ok: false, reason: `${at}.${key}: ${unknownName(key, BAND_KEYS)}` };
      }
      const within = parseDurationText(band.within);
      if (within === null || within <= 0) return { ok: false, reason: `${at}.within: must be a duration such as "1h" or "30d"` };
      const every = band.every === undefined ? 0 : parseDurationText(band.every);
      if (every === null) return { ok: false, reason: `${at}.every: must be a duration such as "1d" ("0": every version)` };
      const previous = staggered.at(-1);
      if (previous && within <= previous.withinMs) return { ok: false, reason: `${at}.within: must be longer than the band before it` };
      staggered.push({ withinMs: within, everyMs: every });
    }
  }
  return { ok: true, value: { keepMs: keep, maxPerFile: perFile, maxTotal: total, staggered } };
}

/** A version as the policy sees it: which file, when it was kept (epoch ms), its size. */
export interface KeptVersion {
  key: string;
  filename: string;
  time: number;
  size: number;
}

/**
 * The versions of one file the policy drops at `now` for their age, their number and their
 * staggering (`max_total` is the entry's, see `dropOverTotal`). Staggering, as Syncthing's: from
 * the oldest to the newest, a version is kept unless it is within its band's `every` of the last
 * version kept.
 */
export function dropForFile(versions: readonly KeptVersion[], policy: VersionPolicy, now: number): KeptVersion[] {
  const dropped = new Set<KeptVersion>();
  const oldestFirst = [...versions].sort((a, b) => a.time - b.time || a.key.localeCompare(b.key));
  let lastKept: KeptVersion | null = null;
  const lastBand = policy.staggered?.at(-1);
  for (const v of oldestFirst) {
    const age = now - v.time;
    if (policy.keepMs !== null && age > policy.keepMs) {
      dropped.add(v);
      continue;
    }
    if (policy.staggered && lastBand) {
      if (age > lastBand.withinMs) {
        dropped.add(v);
        continue;
      }
      const band = policy.staggered.find((b) => age <= b.withinMs)!;
      if (lastKept !== null && band.everyMs > 0 && v.time - lastKept.time < band.everyMs) {
        dropped.add(v);
        continue;
      }
    }
    lastKept = v;
  }
  if (policy.maxPerFile !== null) {
    const kept = oldestFirst.filter((v) => !dropped.has(v));
    for (const v of kept.slice(0, Math.max(0, kept.length - policy.maxPerFile))) dropped.add(v);
  }
  return oldestFirst.filter((v) => dropped.has(v));
}

/** Of an entry's versions (those the per-file limits keep), the oldest to drop until they fit in `max_total`. */
export function dropOverTotal(versions: readonly KeptVersion[], policy: VersionPolicy): KeptVersion[] {
  if (policy.maxTotal === null) return [];
  let total = 0;
  for (const v of versions) total += v.size;
  if (total <= policy.maxTotal) return [];
  const dropped: KeptVersion[] = [];
  for (const v of [...versions].sort((a, b) => a.time - b.time || a.key.localeCompare(b.key))) {
    if (total <= policy.maxTotal) break;
    dropped.push(v);
    total -= v.size;
  }
  return dropped;
}

/** Every version of an entry the policy drops at `now`: per file, then the oldest over `max_total`. */
export function dropAll(versions: readonly KeptVersion[], policy: VersionPolicy, now: number): { expired: KeptVersion[]; overTotal: KeptVersion[] } {
  const byFile = new Map<string, KeptVersion[]>();
  for (const v of versions) {
    let list = byFile.get(v.filename);
    if (!list) byFile.set(v.filename, (list = []));
    list.push(v);
  }
  const expired: KeptVersion[] = [];
  for (const list of byFile.values()) expired.push(...dropForFile(list, policy, now));
  const gone = new Set(expired);
  const overTotal = dropOverTotal(
    versions.filter((v) => !gone.has(v)),
    policy,
  );
  return { expired, overTotal };
}

/**
 * The next moment after `now` at which the policy's decision may change without a new version:
 * when a version reaches `keep`, or crosses into another band of a staggered policy. Null when
 * none will.
 */
export function nextChange(versions: readonly KeptVersion[], policy: VersionPolicy, now: number): number | null {
  const ages = [policy.keepMs, ...(policy.staggered ?? []).map((b) => b.withinMs)].filter((a): a is number => a !== null);
  let next: number | null = null;
  for (const v of versions) {
    for (const age of ages) {
      // Just past the boundary: a version exactly `age` old is still within it.
      const at = v.time + age + 1;
      if (at > now && (next === null || at < next)) next = at;
    }
  }
  return next;
}
