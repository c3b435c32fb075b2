import path from 'node:path';
import os from 'node:os';
import type { DriverFactory } from './driver.js';
import type { ReaderFactory } from './source-reader.js';
import type { LogLevel } from './protocol.js';
import { unknownName } from '../did-you-mean.js';

type Resolved = { ok: true; value: Record<string, unknown> } | { ok: false; reason: string };

/** What the daemon knows of a driver without loading it: how to check and resolve its options. */
export interface DriverSpec {
  /** The option names this driver knows; any other is refused. */
  readonly options: readonly string[];
  /**
   * Resolved options (every option present, defaults filled in), or a reason that starts with
   * the faulty option's name (`settle_ms: must be …`).
   */
  resolveOptions(options: Record<string, unknown>, baseDir: string): Resolved;
  /** The local folder an entry of this driver keeps, from its resolved options; none for a remote one. */
  folder?(resolved: Record<string, unknown>): string;
  /** Loads the driver (inside a worker process). */
  load(): Promise<DriverFactory>;
  /** Loads its read side, for copies out of an entry of this driver into another entry. */
  reader(): Promise<ReaderFactory>;
  /** Options that hold a secret inline: shown masked, and the start warns. */
  readonly secrets?: readonly string[];
}

/** The local_storage options' defaults. */
export const LOCAL_STORAGE_DEFAULTS = {
  /** Milliseconds a file's events must have settled before it is looked at again. */
  settle_ms: 2,
  /** Seconds between two full rescans of the root (the kernel can drop events silently). */
  rescan_interval: 3600,
  /** Seconds between two rescans of the folders the kernel refused to watch. */
  poll_interval: 30,
} as const;

/** Refuses an option not in `known`, naming a close known one. */
function unknownOption(options: Record<string, unknown>, known: readonly string[]): Resolved | null {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) return { ok: false, reason: `${key}: ${unknownName(key, known, 'option')}` };
  }
  return null;
}

const LOCAL_STORAGE_OPTIONS = ['root', 'settle_ms', 'rescan_interval', 'poll_interval'] as const;

/** The remote drivers' defaults. */
export const REMOTE_DEFAULTS = {
  /** Seconds between two listings of the storage, compared with the last one. */
  poll_interval: 10,
} as const;

const SFTP_OPTIONS = [
  'host',
  'port',
  'username',
  'root',
  'key_file',
  'password_env',
  'password',
  'host_key',
  'known_hosts_file',
  'poll_interval',
] as const;

const S3_OPTIONS = [
  'bucket',
  'prefix',
  'endpoint',
  'region',
  'force_path_style',
  'access_key_id_env',
  'secret_access_key_env',
  'access_key_id',
  'secret_access_key',
  'poll_interval',
] as const;

function pollInterval(options: Record<string, unknown>): number | string {
  const value = options.poll_interval ?? REMOTE_DEFAULTS.poll_interval;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) return 'poll_interval: must be a number of seconds greater than 0';
  return value;
}

export const drivers: Record<string, DriverSpec> = {
  local_storage: {
    options: LOCAL_STORAGE_OPTIONS,
    resolveOptions(options, baseDir) {
      const unknown = unknownOption(options, LOCAL_STORAGE_OPTIONS);
      if (unknown) return unknown;
      const root = options.root;
      if (root === undefined) return { ok: false, reason: 'root: missing (the folder this entry keeps)' };
      if (typeof root !== 'string' || root.trim() === '') return { ok: false, reason: 'root: must be a non-empty string' };
      if (root.includes('\0')) return { ok: false, reason: 'root: contains NUL' };
      const settle = options.settle_ms === undefined ? LOCAL_STORAGE_DEFAULTS.settle_ms : options.settle_ms;
      if (typeof settle !== 'number' || !Number.isInteger(settle) || settle < 0) {
        return { ok: false, reason: 'settle_ms: must be a whole number of milliseconds, 0 or more' };
      }
      const seconds: Record<string, number> = {};
      for (const key of ['rescan_interval', 'poll_interval'] as const) {
        const value = options[key] === undefined ? LOCAL_STORAGE_DEFAULTS[key] : options[key];
        if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
          return { ok: false, reason: `${key}: must be a number of seconds greater than 0` };
        }
        seconds[key] = value;
      }
      return { ok: true, value: { root: path.resolve(baseDir, root), settle_ms: settle, ...seconds } };
    },
    folder: (resolved) => resolved.root as string,
    load: async () => (await import('./local-storage/local-storage.js')).default,
    reader: async () => (await import('./local-storage/reader.js')).default,
  },
  sftp: {
    options: SFTP_OPTIONS,
    secrets: ['password'],
    resolveOptions(options, baseDir) {
      const unknown = unknownOption(options, SFTP_OPTIONS);
      if (unknown) return unknown;
      const out: Record<string, unknown> = {};
      for (const key of ['host', 'username', 'root'] as const) {
        const v = options[key];
        if (v === undefined) return { ok: false, reason: `${key}: missing` };
        if (typeof v !== 'string' || v.trim() === '' || v.includes('\0')) return { ok: false, reason: `${key}: must be a non-empty string` };
        out[key] = v;
      }
      const port = options.port ?? 22;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
        return { ok: false, reason: 'port: must be a whole number from 1 to 65535' };
      }
      out.port = port;
      for (const key of ['password_env', 'password'] as const) {
        if (options[key] === undefined) continue;
        if (typeof options[key] !== 'string' || options[key] === '') return { ok: false, reason: `${key}: must be a non-empty string` };
        out[key] = options[key];
      }
      for (const key of ['key_file', 'known_hosts_file'] as const) {
        const v = options[key];
        if (v === undefined) continue;
        if (typeof v !== 'string' || v.trim() === '') return { ok: false, reason: `${key}: must be a path` };
        out[key] = path.resolve(baseDir, v.replace(/^~(?=$|\/)/, os.homedir()));
      }
      if (out.key_file === undefined && out.password_env === undefined && out.password === undefined) {
        return { ok: false, reason: 'key_file: missing (give key_file, the path of a private key, or password_env, the name of an environment variable holding the password)' };
      }
      if (options.host_key !== undefined) {
        if (typeof options.host_key !== 'string' || !/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(options.host_key)) {
          return { ok: false, reason: 'host_key: must be a fingerprint as ssh-keygen -l prints it (SHA256:…)' };
        }
        out.host_key = options.host_key;
      }
      const poll = pollInterval(options);
      if (typeof poll === 'string') return { ok: false, reason: poll };
      out.poll_interval = poll;
      return { ok: true, value: out };
    },
    load: async () => (await import('./sftp/sftp.js')).default,
    reader: async () => (await import('./sftp/sftp.js')).reader,
  },
  s3: {
    options: S3_OPTIONS,
    secrets: ['secret_access_key'],
    resolveOptions(options) {
      const unknown = unknownOption(options, S3_OPTIONS);
      if (unknown) return unknown;
      const out: Record<string, unknown> = {};
      const bucket = options.bucket;
      if (bucket === undefined) return { ok: false, reason: 'bucket: missing' };
      if (typeof bucket !== 'string' || !/^[A-Za-z0-9._-]{1,255}$/.test(bucket)) return { ok: false, reason: 'bucket: must be a bucket name' };
      out.bucket = bucket;
      const prefix = options.prefix ?? '';
      if (typeof prefix !== 'string' || prefix.startsWith('/') || prefix.includes('\0')) {
        return { ok: false, reason: 'prefix: must be a string that does not start with "/"' };
      }
      // A prefix is a folder: its keys are `prefix/…`.
      out.prefix = prefix === '' ? '' : prefix.replace(/\/*$/, '/');
      if (options.endpoint !== undefined) {
        if (typeof options.endpoint !== 'string' || !/^https?:\/\/[^\s]+$/.test(options.endpoint)) {
          return { ok: false, reason: 'endpoint: must be an http:// or https:// URL' };
        }
        out.endpoint = options.endpoint;
      }
      const region = options.region ?? 'us-east-1';
      if (typeof region !== 'string' || region === '') return { ok: false, reason: 'region: must be a non-empty string' };
      out.region = region;
      const pathStyle = options.force_path_style ?? false;
      if (typeof pathStyle !== 'boolean') return { ok: false, reason: 'force_path_style: must be true or false' };
      out.force_path_style = pathStyle;
      for (const key of ['access_key_id_env', 'secret_access_key_env', 'access_key_id', 'secret_access_key'] as const) {
        if (options[key] === undefined) continue;
        if (typeof options[key] !== 'string' || options[key] === '') return { ok: false, reason: `${key}: must be a non-empty string` };
        out[key] = options[key];
      }
      const hasId = out.access_key_id_env !== undefined || out.access_key_id !== undefined;
      const hasSecret = out.secret_access_key_env !== undefined || out.secret_access_key !== undefined;
      if (hasId !== hasSecret) {
        return hasId
          ? { ok: false, reason: 'secret_access_key_env: missing (an access key id is given without its secret)' }
          : { ok: false, reason: 'access_key_id_env: missing (a secret access key is given without its id)' };
      }
      const poll = pollInterval(options);
      if (typeof poll === 'string') return { ok: false, reason: poll };
      out.poll_interval = poll;
      return { ok: true, value: out };
    },
    load: async () => (await import('./s3/s3.js')).default,
    reader: async () => (await import('./s3/s3.js')).reader,
  },
};

/** What the API shows of an entry's options: every secret given inline masked. */
export function publicOptions(driver: string, options: Record<string, unknown>): Record<string, unknown> {
  const secrets = drivers[driver]?.secrets ?? [];
  if (!secrets.some((k) => options[k] !== undefined)) return options;
  return Object.fromEntries(Object.entries(options).map(([k, v]) => [k, secrets.includes(k) ? '***' : v]));
}

/** The start's warning for a secret written inline in the setup (it works, but it should be a reference). */
export function warnInlineSecrets(
  driver: string,
  options: Record<string, unknown>,
  log: (level: LogLevel, msg: string) => void,
): void {
  for (const key of drivers[driver]?.secrets ?? []) {
    if (options[key] === undefined) continue;
    log('warn', `the setup gives ${key} inline; it works, but name an environment variable holding it instead (${key}_env)`);
  }
}
