import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { forkWorker } from '../src/worker-fork.js';
import { until } from './helpers.js';

const forked: ChildProcess[] = [];
const saved = process.env.NODE_EXTRA_CA_CERTS;

afterEach(() => {
  for (const child of forked.splice(0)) child.kill('SIGKILL');
  if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
  else process.env.NODE_EXTRA_CA_CERTS = saved;
});

/** The names in a worker's environment, once it runs its own program (before, a fork shows its parent's). */
async function environmentOf(child: ChildProcess, driver: string): Promise<string[]> {
  const text = await until('the worker to run', () => {
    try {
      if (!fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').includes(driver)) return null;
      return fs.readFileSync(`/proc/${child.pid}/environ`, 'utf8') || null;
    } catch {
      return null;
    }
  });
  return text!.split('\0').map((line) => line.slice(0, line.indexOf('=')));
}

describe('forkWorker', () => {
  it('starts a local entry\'s worker without NODE_EXTRA_CA_CERTS (parsed at every start, for no TLS), a remote one\'s with it', async () => {
    process.env.NODE_EXTRA_CA_CERTS = '/etc/ssl/certs/ca-certificates.crt';
    const local = forkWorker('local_storage');
    const remote = forkWorker('s3');
    forked.push(local, remote);
    const localEnv = await environmentOf(local, 'local_storage');
    expect(localEnv).toContain('PATH');
    expect(localEnv).not.toContain('NODE_EXTRA_CA_CERTS');
    expect(await environmentOf(remote, 's3')).toContain('NODE_EXTRA_CA_CERTS');
    // The daemon's own environment is left as it was.
    expect(process.env.NODE_EXTRA_CA_CERTS).toBe('/etc/ssl/certs/ca-certificates.crt');
  });
});
