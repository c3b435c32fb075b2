import { createHash, createHmac } from 'node:crypto';
import fs from 'node:fs';
import { DriverRefusal } from '../driver.js';

/** A server key that must not be trusted, or cannot be without the user's word: the entry refuses. */
export class HostKeyRefusal extends DriverRefusal {
  constructor(reason: string) {
    super(reason);
    this.name = 'HostKeyRefusal';
  }
}

/** A key's fingerprint as `ssh-keygen -l` prints it: `SHA256:` and the unpadded base64 of its sha256. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The name a known_hosts file gives a host: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function nameMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    // A hashed name: |1|base64(salt)|base64(HMAC-SHA1(salt, name)).
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  return pattern.split(',').some((p) => p === name);
}

/** The key type of an SSH public key blob (its first string). */
function keyType(key: Buffer): string {
  if (key.length < 4) return '';
  const len = key.readUInt32BE(0);
  return key.subarray(4, 4 + len).toString('latin1');
}

/**
 * Checks the server's key against `host_key` (a fingerprint) or, without one, against a
 * known_hosts file. Returns null when it is trusted, else why not: the entry refuses, and the
 * reason prints the fingerprint to check and copy.
 */
export function hostKeyProblem(
  key: Buffer,
  at: { host: string; port: number },
  expected: string | null,
  knownHostsFile: string,
): string | null {
  const seen = fingerprint(key);
  const where = `${at.host}:${at.port}`;
  if (expected !== null) {
    if (seen === expected.replace(/=+$/, '')) return null;
    return (
      `the host key of ${where} is ${seen}, not the host_key ${expected} this entry expects; refusing to connect ` +
      '(if the server was re-keyed on purpose, check the new key and put it in host_key)'
    );
  }
  let text: string;
  try {
    text = fs.readFileSync(knownHostsFile, 'utf8');
  } catch {
    text = '';
  }
  const name = knownHostsName(at.host, at.port);
  const type = keyType(key);
  const blob = key.toString('base64');
  let sameTypeOther = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    // An optional marker (@cert-authority, @revoked) comes first.
    const marker = fields[0].startsWith('@') ? fields.shift()! : null;
    const [hosts, ktype, kdata] = fields;
    if (!hosts || !ktype || !kdata || !nameMatches(hosts, name)) continue;
    if (marker === '@revoked' && kdata === blob) return `the host key of ${where} (${seen}) is revoked in ${knownHostsFile}; refusing to connect`;
    if (marker !== null) continue;
    if (kdata === blob) return null;
    if (ktype === type) sameTypeOther = true;
  }
  if (sameTypeOther) {
    return (
      `the host key of ${where} changed: it is now ${seen}, not the one ${knownHostsFile} holds; refusing to connect ` +
      '(if the server was re-keyed on purpose, check the new key and put it in host_key)'
    );
  }
  return (
    `the host key of ${where} is not known: it is ${seen}; check it (ssh-keygen -lf on the server's key), then put ` +
    `"host_key": "${seen}" in this entry's options or add the key to ${knownHostsFile}`
  );
}
