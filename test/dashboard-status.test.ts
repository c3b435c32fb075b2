import { describe, expect, it } from 'vitest';
import { bytes, count, percent } from '../src/dashboard/format.js';
import { entryStatus, holdingsText, overallText, statusText, type EntryFacts } from '../src/dashboard/sync-status.js';

/** What the dashboard's overview says of an entry: the words, from what the API tells of it. */

const MB = 1024 * 1024;
const facts = (over: Partial<EntryFacts> = {}): EntryFacts => ({
  path: ['active', 'running'],
  lastError: null,
  queue: 0,
  pending: { files: 0, bytes: 0, capped: false },
  failing: { files: 0, bytes: 0, capped: false, reason: null },
  holdings: { ownedFiles: 10, ownedBytes: 100 * MB, heldFiles: 10, heldBytes: 100 * MB },
  copied: 0,
  rate: 0,
  ...over,
});
const say = (f: EntryFacts, live = true) => statusText(entryStatus(f, live));

describe('the overview in words', () => {
  it('an entry that holds everything it owns is up to date', () => {
    expect(entryStatus(facts(), true)).toEqual({ kind: 'uptodate', label: 'Up to date', parts: [] });
  });

  it('while the daemon is unreachable every entry is unknown, whatever was known before', () => {
    expect(entryStatus(facts(), false)).toEqual({ kind: 'unknown', label: 'Unknown', parts: [{ text: 'the daemon is unreachable' }] });
    expect(say(facts({ path: ['stopped'] }), false)).toBe('Unknown — the daemon is unreachable');
  });

  it('says nothing before the first answers', () => {
    expect(say(facts({ path: null }))).toBe('Checking…');
    expect(say(facts({ pending: null }))).toBe('Checking…');
  });

  it('a stopped entry counts what waits for it, with a link to those files', () => {
    const status = entryStatus(facts({ path: ['stopped'], pending: { files: 12, bytes: 3 * MB, capped: false } }), true);
    expect(status).toEqual({ kind: 'stopped', label: 'Stopped', parts: [{ text: '12 files waiting (3.0 MB)', link: 'pending' }] });
    expect(say(facts({ path: ['stopped'], pending: { files: 1, bytes: 23, capped: false } }))).toBe('Stopped — 1 file waiting (23 B)');
    expect(say(facts({ path: ['stopped'] }))).toBe('Stopped — nothing waiting');
    expect(say(facts({ path: ['stopped'], queue: 2 }))).toBe('Stopped — 2 changes waiting (deletions or renames)');
    expect(say(facts({ path: ['stopped'], pending: { files: 10_000, bytes: 0, capped: true } }))).toBe('Stopped — 10,000+ files waiting');
    expect(say(facts({ path: ['stopped'], lastError: 'could not start: root missing' }))).toBe('Stopped — nothing waiting, could not start: root missing');
  });

  it('a running entry with files to copy is syncing: how far, how many files and bytes are left', () => {
    const h = { ownedFiles: 4028, ownedBytes: 4000 * MB, heldFiles: 2825, heldBytes: 1800 * MB };
    const f = facts({ holdings: h, pending: { files: 1203, bytes: 2200 * MB, capped: false }, copied: 0 });
    expect(entryStatus(f, true)).toEqual({
      kind: 'syncing',
      label: 'Syncing 45 %',
      parts: [{ text: '1,203 files, 2.1 GB left', link: 'pending' }],
    });
    // What the running copies have done is no longer left.
    expect(say({ ...f, copied: 200 * MB })).toBe('Syncing 50 % — 1,203 files, 2.0 GB left');
    // Empty files: counted in files.
    expect(say(facts({ holdings: { ownedFiles: 4, ownedBytes: 0, heldFiles: 1, heldBytes: 0 }, pending: { files: 3, bytes: 0, capped: false } }))).toBe(
      'Syncing 25 % — 3 files, 0 B left',
    );
    // Without the whole listing, no percentage.
    expect(say(facts({ holdings: null, pending: { files: 2, bytes: 10, capped: false } }))).toBe('Syncing — 2 files, 10 B left');
    expect(say(facts({ queue: 3 }))).toBe('Syncing — 3 changes left (deletions or renames)');
  });

  it('failing: a worker that keeps exiting, or files whose copy keeps failing, with why', () => {
    expect(say(facts({ path: ['restarting'], lastError: 'worker exited unexpectedly (signal SIGKILL)' }))).toBe(
      'Failing — worker exited unexpectedly (signal SIGKILL); restarting',
    );
    const failing = entryStatus(facts({ pending: { files: 3, bytes: 30, capped: false }, failing: { files: 2, bytes: 20, capped: false, reason: 'EACCES: permission denied' } }), true);
    expect(failing).toEqual({ kind: 'failing', label: 'Failing', parts: [{ text: '2 files keep failing: EACCES: permission denied', link: 'failing' }] });
  });

  it('a starting entry is rescanning its root', () => {
    expect(say(facts({ path: ['active', 'starting'], pending: { files: 5, bytes: 50, capped: false } }))).toBe('Starting — rescanning its root, 5 files waiting (50 B)');
  });

  it('what an entry holds of what it owns', () => {
    expect(holdingsText({ ownedFiles: 4028, ownedBytes: 1.3 * 1024 * MB, heldFiles: 4016, heldBytes: 1.2 * 1024 * MB })).toBe('holds 4,016 of 4,028 files · 1.2 GB of 1.3 GB');
    expect(holdingsText(null)).toBe('–');
  });

  it('the answer for all entries', () => {
    const up = entryStatus(facts(), true);
    const stopped = entryStatus(facts({ path: ['stopped'], pending: { files: 12, bytes: 0, capped: false } }), true);
    expect(overallText([{ name: 'A', status: up }], true).kind).toBe('insync');
    expect(overallText([{ name: 'A', status: up }, { name: 'B', status: stopped }], true)).toEqual({
      kind: 'outofsync',
      text: 'Not in sync: B stopped — 12 files waiting.',
    });
    expect(overallText([{ name: 'A', status: up }], false)).toEqual({ kind: 'unknown', text: 'Unknown: the daemon is unreachable.' });
  });

  it('numbers as people read them', () => {
    expect(count(1203)).toBe('1,203');
    expect(bytes(2.1 * 1024 * MB)).toBe('2.1 GB');
    expect(bytes(146 * 1024)).toBe('146 KB');
    expect(percent(999, 1000)).toBe(99);
    expect(percent(1000, 1000)).toBe(100);
    expect(percent(0, 0)).toBe(100);
  });
});
