import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterEach, expect, it } from 'vitest';
import { CLI, tempDir, until, writeSetup } from './helpers.js';

/**
 * On a terminal the daemon logs readable lines through pino-pretty, in a worker thread that
 * loads pino's files by path: the daemon's bundle carries pino, so that logger is made by pino
 * as installed (src/logger.ts). `script` gives the daemon a terminal.
 */
const hasScript = spawnSync('script', ['--version']).status === 0;
if (!hasScript) console.log('logger-tty: skipped, no `script` (util-linux) to give the daemon a terminal');

let dir = '';
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it.runIf(hasScript)('on a terminal, the daemon logs readable lines, and syncs', async () => {
  dir = await tempDir('ferry-tty-');
  const setup = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules: [{ match: { path: '/' }, sync: ['A', 'B'] }] });
  fs.writeFileSync(path.join(dir, 'A', 'x.txt'), 'from A');
  const child = spawn('script', ['-qec', `${process.execPath} ${CLI} start --setup ${setup} --port 0`, '/dev/null'], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  try {
    // eslint-disable-next-line no-control-regex
    const plain = () => out.replace(/\x1b\[[0-9;]*m/g, '');
    await until('the readable line that says it runs', () => /\] INFO: ferry is running/.test(plain()), 20_000);
    expect(plain()).toMatch(/\] INFO: Server listening at http:\/\/127\.0\.0\.1:\d+/);
    expect(plain()).not.toMatch(/^\{"level"/m);
    await until('x.txt in B', () => fs.existsSync(path.join(dir, 'B', 'x.txt')));
  } finally {
    try {
      process.kill(-child.pid!, 'SIGINT');
    } catch {
      // gone
    }
    await new Promise((r) => child.once('exit', r));
  }
});
