import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { api, daemonHarness, startDaemon, until, type RunningDaemon } from './helpers.js';
import { hasS3rver, hasSshd, s3Storage, sftpStorage, startS3rver, startSshd, type S3Server, type SshServer } from './servers.js';

/**
 * Ignore patterns on real folders and a real daemon (the built `ferry start`): the setup's (for
 * every entry and per entry) and a root's `.ferryignore`, edited while the daemon runs. An
 * ignored file is never reported, overwritten or deleted; a pattern added later deletes nothing.
 */

const harness = daemonHarness('ferry-ignore-');
let dir: string;
let daemons: RunningDaemon[];
beforeEach(() => void ({ dir, daemons } = harness));

const at = (entry: string, rel: string) => path.join(dir, entry, rel);
const read = (entry: string, rel: string): string | null => {
  try {
    return fs.readFileSync(at(entry, rel), 'utf8');
  } catch {
    return null;
  }
};
async function put(entry: string, rel: string, content: string): Promise<void> {
  await fsp.mkdir(path.dirname(at(entry, rel)), { recursive: true });
  await fsp.writeFile(at(entry, rel), content);
}

/** A daemon on A and B, everything synced to both: `*.tmp` ignored everywhere, `secret/` in B. */
async function boot(): Promise<RunningDaemon> {
  await fsp.mkdir(path.join(dir, 'A'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'B'), { recursive: true });
  const setup = path.join(dir, 'setup.json');
  await fsp.writeFile(
    setup,
    JSON.stringify({
      ignore: ['*.tmp'],
      entries: {
        A: { driver: 'local_storage', options: { root: 'A' } },
        B: { driver: 'local_storage', options: { root: 'B' }, ignore: ['secret/'] },
      },
      rules: [{ match: { path: '/' }, sync: ['A', 'B'] }],
    }),
  );
  const d = await startDaemon(setup);
  daemons.push(d);
  return d;
}

type Listed = Record<string, { owners: string[]; uptodate: string[] }>;
async function catalogue(d: RunningDaemon): Promise<Listed> {
  const files = (await api(d.api, 'GET', '/files?limit=1000')).body.files as { filename: string; owners: string[]; uptodate: string[] }[];
  return Object.fromEntries(files.map((f) => [f.filename, { owners: f.owners, uptodate: f.uptodate }]));
}
const settled = (d: RunningDaemon, expected: Listed) =>
  until(`the catalogue to be ${JSON.stringify(expected)}`, async () => JSON.stringify(await catalogue(d)) === JSON.stringify(expected));
const both = { owners: ['A', 'B'], uptodate: ['A', 'B'] };
const onlyA = { owners: ['A'], uptodate: ['A'] };
const onlyB = { owners: ['B'], uptodate: ['B'] };

/** Every file under a root, Ferry's own names included. */
function tree(entry: string): string[] {
  return (fs.readdirSync(path.join(dir, entry), { recursive: true }) as string[])
    .filter((p) => fs.statSync(path.join(dir, entry, p)).isFile())
    .map((p) => p.split(path.sep).join('/'))
    .sort();
}

describe('ignore patterns', () => {
  it('the setup’s and .ferryignore’s keep matching files out of the catalogue and out of every other entry', async () => {
    await put('A', '.ferryignore', '# build output\n*.log\nbuild/\n');
    await put('A', 'ok.txt', 'ok\n');
    await put('A', 'a.tmp', 'tmp\n');
    await put('A', 'x.log', 'log\n');
    await put('A', 'build/out.bin', 'out\n');
    await put('A', 'secret/s.txt', 'shh\n');
    await put('A', 'sub/.ferryignore', 'not read: only the root’s is\n');
    await put('B', 'b.tmp', 'tmp in B\n');
    await put('B', 'secret/mine.txt', 'B’s own\n');
    const d = await boot();

    await settled(d, { 'ok.txt': both, 'secret/s.txt': onlyA });
    expect(read('B', 'ok.txt')).toBe('ok\n');
    // B got nothing A ignores or it ignores itself, and A nothing B ignores; Ferry's own files stay home.
    expect(tree('B')).toEqual(['.ferry-entry', 'b.tmp', 'ok.txt', 'secret/mine.txt']);
    expect(tree('A')).toEqual(['.ferry-entry', '.ferryignore', 'a.tmp', 'build/out.bin', 'ok.txt', 'secret/s.txt', 'sub/.ferryignore', 'x.log']);
    // Each entry shows its patterns in force: the setup's, then its .ferryignore's.
    expect((await api(d.api, 'GET', '/entries/A')).body.ignore).toEqual(['*.tmp', '*.log', 'build/']);
    expect((await api(d.api, 'GET', '/entries/B')).body.ignore).toEqual(['*.tmp', 'secret/']);
    expect((await api(d.api, 'GET', '/entries')).body.entries.map((e: { ignore: string[] }) => e.ignore)).toEqual([
      ['*.tmp', '*.log', 'build/'],
      ['*.tmp', 'secret/'],
    ]);

    // Live: an ignored file written or changed is never reported.
    await put('A', 'later.log', 'later\n');
    await put('A', 'build/more.bin', 'more\n');
    await put('A', 'later.txt', 'later\n');
    await settled(d, { 'later.txt': both, 'ok.txt': both, 'secret/s.txt': onlyA });
    expect(read('B', 'later.log')).toBeNull();
    expect(fs.existsSync(at('B', 'build'))).toBe(false);
  });

  it('editing .ferryignore while running takes effect: new patterns stop syncing, removed ones start it', async () => {
    await put('A', 'keep.txt', 'keep\n');
    const d = await boot();
    await settled(d, { 'keep.txt': both });

    await put('A', '.ferryignore', '*.bak\n');
    await until('A to apply it', async () => JSON.stringify((await api(d.api, 'GET', '/entries/A')).body.ignore) === '["*.tmp","*.bak"]');
    await put('A', 'n.bak', 'backup\n');
    await put('A', 'n.txt', 'text\n');
    await settled(d, { 'keep.txt': both, 'n.txt': both });
    expect(read('B', 'n.bak')).toBeNull();

    // The pattern removed: the file it hid is found and synced.
    await fsp.rm(at('A', '.ferryignore'));
    await settled(d, { 'keep.txt': both, 'n.bak': both, 'n.txt': both });
    expect(read('B', 'n.bak')).toBe('backup\n');
    expect((await api(d.api, 'GET', '/entries/A')).body.ignore).toEqual(['*.tmp']);
  });

  it('a pattern added later deletes nothing, here or elsewhere; the entry just stops syncing those files', async () => {
    await put('A', 'shared.txt', 'v1\n');
    await put('A', 'other.txt', 'other\n');
    const d = await boot();
    await settled(d, { 'other.txt': both, 'shared.txt': both });

    await put('A', '.ferryignore', 'shared.txt\n');
    // A no longer holds nor owns it; both copies stay.
    await settled(d, { 'other.txt': both, 'shared.txt': onlyB });
    expect(read('A', 'shared.txt')).toBe('v1\n');
    expect(read('B', 'shared.txt')).toBe('v1\n');

    // A deletes its copy: nothing happens to B's. B edits its own: A's path is left alone.
    await fsp.rm(at('A', 'shared.txt'));
    await put('B', 'shared.txt', 'v2 in B\n');
    await put('A', 'other.txt', 'other, edited\n');
    await until('the edit of other.txt in B', () => read('B', 'other.txt') === 'other, edited\n');
    await settled(d, { 'other.txt': both, 'shared.txt': onlyB });
    expect(read('B', 'shared.txt')).toBe('v2 in B\n');
    expect(read('A', 'shared.txt')).toBeNull();

    // A restart keeps it so: the daemon does not take A's missing copy for a deletion.
    await d.stop();
    daemons.splice(daemons.indexOf(d), 1);
    const again = await startDaemon(path.join(dir, 'setup.json'));
    daemons.push(again);
    await settled(again, { 'other.txt': both, 'shared.txt': onlyB });
    expect(read('B', 'shared.txt')).toBe('v2 in B\n');
    expect(read('A', 'shared.txt')).toBeNull();
  });

  it('a pattern in the setup added while the daemon was down deletes nothing either', async () => {
    await put('A', 'data.csv', 'a,b\n');
    await put('A', 'readme.txt', 'hi\n');
    let d = await boot();
    await settled(d, { 'data.csv': both, 'readme.txt': both });
    await d.stop();
    daemons.splice(daemons.indexOf(d), 1);
    const setup = path.join(dir, 'setup.json');
    const raw = JSON.parse(await fsp.readFile(setup, 'utf8')) as { entries: { B: { ignore: string[] } } };
    raw.entries.B.ignore.push('*.csv');
    await fsp.writeFile(setup, JSON.stringify(raw));
    // B's copy removed while down: B ignores it, so that is no deletion to propagate.
    await fsp.rm(at('B', 'data.csv'));
    d = await startDaemon(setup);
    daemons.push(d);
    await settled(d, { 'data.csv': onlyA, 'readme.txt': both });
    await new Promise((r) => setTimeout(r, 300));
    expect(read('A', 'data.csv')).toBe('a,b\n');
    expect(read('B', 'data.csv')).toBeNull();
  });

  const remotes = [...(hasSshd ? (['sftp'] as const) : []), ...(hasS3rver ? (['s3'] as const) : [])];
  describe.each(remotes)('on a remote entry (%s, a real server)', (kind) => {
    let ssh: SshServer | null = null;
    let s3: S3Server | null = null;
    afterAll(async () => {
      await ssh?.stop();
      await s3?.stop();
    });

    it('the setup’s patterns apply on the daemon’s side: nothing ignored reaches it, nothing of it is recorded', async () => {
      const name = `t${process.pid}-ignore`;
      const remote = kind === 'sftp' ? await sftpStorage((ssh = await startSshd()), name) : await s3Storage((s3 = await startS3rver()), name);
      await remote.put('from-remote.txt', 'remote\n');
      await remote.put('remote.log', 'remote log\n');
      await remote.put('both.log', 'R’s own\n');
      await put('A', 'both.log', 'A’s own\n');
      await put('A', 'a.txt', 'a\n');
      await put('A', 'a.log', 'a log\n');
      await put('A', 'a.tmp', 'tmp\n');
      const setup = path.join(dir, 'setup.json');
      await fsp.writeFile(
        setup,
        JSON.stringify({
          ignore: ['*.tmp'],
          entries: {
            A: { driver: 'local_storage', options: { root: 'A' } },
            R: { driver: remote.driver, options: remote.options, ignore: ['*.log'] },
          },
          rules: [{ match: { path: '/' }, sync: ['A', 'R'] }],
        }),
      );
      const d = await startDaemon(setup);
      daemons.push(d);
      const withR = { owners: ['A', 'R'], uptodate: ['A', 'R'] };
      await settled(d, { 'a.log': onlyA, 'a.txt': withR, 'both.log': onlyA, 'from-remote.txt': withR });
      expect((await api(d.api, 'GET', '/entries/R')).body.ignore).toEqual(['*.tmp', '*.log']);
      expect([...(await remote.files()).keys()].sort()).toEqual(['a.txt', 'both.log', 'from-remote.txt', 'remote.log']);
      expect(read('A', 'remote.log')).toBeNull();
      // A file of the same name on both sides: R's, which R ignores, is neither overwritten nor reported.
      expect(String(await remote.read('both.log'))).toBe('R’s own\n');
      expect(read('A', 'both.log')).toBe('A’s own\n');

      // Live: what R ignores and is written on either side, or deleted in A, never reaches R's storage nor the catalogue.
      await put('A', 'later.log', 'later\n');
      await put('A', 'later.txt', 'later\n');
      await remote.put('later-remote.log', 'remote, later\n');
      await fsp.rm(at('A', 'both.log'));
      await settled(d, { 'a.log': onlyA, 'a.txt': withR, 'from-remote.txt': withR, 'later.log': onlyA, 'later.txt': withR });
      // A poll of R now, answered once recorded: it found nothing more.
      expect((await api(d.api, 'PUT', '/entries/R/rescan')).status).toBe(200);
      await settled(d, { 'a.log': onlyA, 'a.txt': withR, 'from-remote.txt': withR, 'later.log': onlyA, 'later.txt': withR });
      expect([...(await remote.files()).keys()].sort()).toEqual(['a.txt', 'both.log', 'from-remote.txt', 'later-remote.log', 'later.txt', 'remote.log']);
      expect(String(await remote.read('both.log'))).toBe('R’s own\n');
      expect(read('A', 'later-remote.log')).toBeNull();
    });
  });
});
