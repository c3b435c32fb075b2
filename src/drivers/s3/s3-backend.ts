import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { ScannedFile } from '../../../machines/reports.js';
import { INTERNAL_PREFIX, isInternalName, unsafeReason, UnsafePathError } from '../../paths.js';
import { DriverRefusal, StaleJob } from '../driver.js';
import { type CopyLimits, FOLDER_STAT, type Listing, type RemoteBackend, type RemoteStat, TargetExists, type UploadPlan } from '../remote/backend.js';
import { plain } from '../remote/poller.js';
import { MARKER } from '../remote/remote-driver.js';
import { partialId } from '../remote/partials.js';
import { borrow, giveBack } from '../buffer-pool.js';
import { StatBatcher } from './stat-batcher.js';
import { VERSIONS_FOLDER } from '../../versions/names.js';

export interface S3Options {
  bucket: string;
  /** `''` or a folder ending in `/`. */
  prefix: string;
  endpoint?: string;
  region: string;
  force_path_style: boolean;
  access_key_id_env?: string;
  secret_access_key_env?: string;
  access_key_id?: string;
  /** Inline in the setup (discouraged: the start warns). */
  secret_access_key?: string;
}

/** Files up to this size go in one PutObject (read into memory once, for their MD5); larger ones multipart. */
export const SINGLE_PUT_MAX = 8 << 20;
/** The size of a multipart upload's parts (S3 wants at least 5 MiB but for the last, and at most 10,000 parts). */
export const PART_SIZE = 8 << 20;
/** Uploads up to this size ask their stat afterwards with others (a listing); larger ones by HEAD. */
const BATCHED_STAT_MAX = 1 << 20;
/** Multipart uploads older than this are aborted at start (their partial markers are removed at that age too). */
const ABANDONED_AFTER_MS = 7 * 24 * 3600 * 1000;
/** The largest object CopyObject copies: a larger file is not kept as a version. */
const COPY_MAX = 5 * 1024 ** 3;
/** Past every key that begins with a given prefix (the largest code point). */
const PAST = '\u{10FFFF}';

const md5 = (b: Buffer) => createHash('md5').update(b);
const unquote = (etag: string | undefined) => (etag ?? '').replace(/"/g, '');
/** S3's times: whole seconds, whichever call gives them (a listing has milliseconds, HEAD not). */
const seconds = (d: Date | undefined) => Math.floor((d?.getTime() ?? 0) / 1000) * 1000;

interface ErrorLike {
  name?: string;
  code?: string;
  message?: string;
  cause?: { code?: string };
  errors?: { code?: string }[];
  $metadata?: { httpStatusCode?: number };
}

const statusOf = (err: unknown) => (err as ErrorLike | null)?.$metadata?.httpStatusCode;
const isMissing = (err: unknown) => {
  const e = err as ErrorLike;
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || statusOf(err) === 404;
};
/** A call this server does not implement (s3rver has no ListParts, ListMultipartUploads nor Abort). */
const unsupported = (err: unknown) => {
  const e = err as ErrorLike;
  return e?.name === 'NotImplemented' || e?.name === 'MethodNotAllowed' || statusOf(err) === 405 || statusOf(err) === 501;
};

/** What a partial marker holds: the multipart upload of one version of a file, and its parts so far. */
interface PartialRecord {
  uploadId: string;
  key: string;
  partSize: number;
  /** ETags of the parts uploaded, by part number (for servers without ListParts). */
  parts: Record<string, string>;
}

/** A bucket (and prefix) through the AWS SDK: works with AWS, MinIO, s3rver. */
export class S3Backend implements RemoteBackend {
  readonly endpoint: string;
  readonly renameKeepsMtime = false;
  /**
   * Copies at once: a small one is a request or two of a few milliseconds, so many keep the
   * server busy (the HTTP agent's 64 sockets carry them); large ones are read whole (a part at a
   * time) for their Content-MD5, a few files at once.
   */
  readonly copyLimits: CopyLimits = { files: 256, bytes: 32 << 20 };
  readonly versionMax = COPY_MAX;
  private readonly client: S3Client;
  /** Whether the server takes `If-None-Match: *` on uploads (one that ignores it is trusted on its last listing). */
  private conditional = true;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly stats: StatBatcher;

  constructor(options: S3Options) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    this.endpoint = `s3 ${options.bucket}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
    const id = options.access_key_id_env ? process.env[options.access_key_id_env] : options.access_key_id;
    const secret = options.secret_access_key_env ? process.env[options.secret_access_key_env] : options.secret_access_key;
    if (options.access_key_id_env && id === undefined) {
      throw new DriverRefusal(`access_key_id_env: the environment variable ${options.access_key_id_env} is not set`);
    }
    if (options.secret_access_key_env && secret === undefined) {
      throw new DriverRefusal(`secret_access_key_env: the environment variable ${options.secret_access_key_env} is not set`);
    }
    // The SDK warns on Node 20 about its releases after January 2027; this one is pinned.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const agent = { keepAlive: true, maxSockets: 64 };
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.force_path_style,
      // Without references in the setup: the SDK's usual chain (environment, profile, instance role).
      ...(id !== undefined && secret !== undefined ? { credentials: { accessKeyId: id, secretAccessKey: secret } } : {}),
      // Ferry sends Content-MD5 itself (which S3 and MinIO verify) and checks the ETag back;
      // the SDK's default CRC32 trailers are not understood by every server (s3rver).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Ferry retries with its own back-off and says why in the entry's status.
      maxAttempts: 2,
      // Each kind of command's middleware stack is resolved once, not on every request.
      cacheMiddleware: true,
      requestHandler: {
        connectionTimeout: 5000,
        requestTimeout: 120_000,
        httpAgent: new http.Agent(agent),
        httpsAgent: new https.Agent(agent),
      },
    });
    // Uploads are signed without hashing their body again (UNSIGNED-PAYLOAD, as rclone does):
    // their integrity is the Content-MD5 the server checks and the ETag checked back.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = (context as { commandName?: string }).commandName;
        const request = args.request as { headers?: Record<string, string> };
        if ((command === 'PutObjectCommand' || command === 'UploadPartCommand') && request.headers) {
          request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      },
      { step: 'build', name: 'ferryUnsignedPayload' },
    );
    this.stats = new StatBatcher(
      (key) => this.headStat(key),
      async (folder, from, maxKeys) => {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: folder,
            Delimiter: '/',
            MaxKeys: maxKeys,
            ...(from.token ? { ContinuationToken: from.token } : { StartAfter: from.startAfter }),
          }),
        );
        return {
          items: (page.Contents ?? []).map((o) => ({ key: o.Key ?? '', stat: objectStat(o.Size, o.LastModified, o.ETag) })),
          next: page.IsTruncated ? page.NextContinuationToken : undefined,
        };
      },
    );
  }

  // ---- the connection ----

  async connect(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (statusOf(err) === 404 || (err as ErrorLike).name === 'NoSuchBucket') {
        throw new DriverRefusal(`bucket ${this.bucket} does not exist (${this.endpoint})`);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  connectionError(err: unknown): string | null {
    if (err instanceof DriverRefusal) return err.message;
    const e = err as ErrorLike | null;
    if (!e) return null;
    const code = e.code ?? e.cause?.code ?? e.errors?.[0]?.code;
    switch (code) {
      case 'ECONNREFUSED':
        return 'connection refused';
      case 'ECONNRESET':
      case 'EPIPE':
        return 'connection lost';
      case 'ETIMEDOUT':
        return 'timed out';
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return 'host not found';
    }
    switch (e.name) {
      case 'InvalidAccessKeyId':
      case 'SignatureDoesNotMatch':
      case 'AccessDenied':
      case 'Forbidden':
        return `access denied (${e.name}): check the credentials`;
      case 'CredentialsProviderError':
        return 'no credentials found (set access_key_id_env and secret_access_key_env, or the SDK’s usual environment)';
      case 'TimeoutError':
      case 'RequestTimeout':
        return 'timed out';
    }
    if (statusOf(err) === 403) return 'access denied (403): check the credentials';
    if (/socket hang up|ECONNREFUSED|ECONNRESET/i.test(e.message ?? '')) return 'connection lost';
    return null;
  }

  // ---- keys ----

  private key(rel: string): string {
    const reason = unsafeReason(rel);
    if (reason) throw new UnsafePathError(rel, reason);
    return this.prefix + rel;
  }

  /** A partial marker's key: beside the file, named after the version it uploads. */
  private partialKey(rel: string, size: number, mtime: number): string {
    const dir = path.posix.dirname(rel);
    const name = `${INTERNAL_PREFIX}part-${partialId(rel, size, mtime)}`;
    return this.key(dir === '.' ? name : `${dir}/${name}`);
  }

  // ---- the read side ----

  /** HEAD, or (several keys of one folder asked at once) a listing of them: see StatBatcher. */
  stat(rel: string): Promise<RemoteStat | null> {
    return this.stats.stat(this.key(rel));
  }

  private async headStat(key: string): Promise<RemoteStat | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return objectStat(head.ContentLength, head.LastModified, head.ETag);
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async open(rel: string, offset: number): Promise<Readable> {
    try {
      const got = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(rel), ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}) }),
      );
      return got.Body as Readable;
    } catch (err) {
      // From the very end of the file: nothing to read.
      if ((err as ErrorLike).name === 'InvalidRange' || statusOf(err) === 416) return Readable.from([]);
      throw err;
    }
  }

  async list(): Promise<ScannedFile[]> {
    const { files } = await this.listing();
    return [...files].map(([rel, st]) => ({ path: rel, ...plain(st) }));
  }

  async listing(): Promise<Listing> {
    const files = new Map<string, RemoteStat>();
    const internal: Listing['internal'] = [];
    // The versions folder's keys are skipped: a page that ends inside it is followed by a listing
    // from past it, so that a poll costs no more for the versions kept.
    const versions = `${this.prefix}${VERSIONS_FOLDER}/`;
    let token: string | undefined;
    let startAfter: string | undefined;
    let jumped = false;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix || undefined,
            ...(token !== undefined ? { ContinuationToken: token } : startAfter !== undefined ? { StartAfter: startAfter } : {}),
          }),
        );
      } catch (err) {
        if ((err as ErrorLike).name === 'NoSuchBucket') throw new DriverRefusal(`bucket ${this.bucket} does not exist (${this.endpoint})`);
        throw err;
      }
      const contents = page.Contents ?? [];
      for (const o of contents) {
        if (!o.Key || o.Key === this.prefix || o.Key.startsWith(versions)) continue;
        if (o.Key.endsWith('/')) {
          // A folder's marker object (as the S3 consoles make them): the folder, kept even empty.
          const folder = o.Key.slice(this.prefix.length, -1);
          if (folder !== '' && !folder.split('/').some(isInternalName)) files.set(folder, { ...FOLDER_STAT });
          continue;
        }
        const rel = o.Key.slice(this.prefix.length);
        const segments = rel.split('/');
        if (isInternalName(segments[segments.length - 1])) {
          internal.push({ rel, mtime: o.LastModified?.getTime() ?? 0 });
          continue;
        }
        if (segments.some(isInternalName)) continue;
        files.set(rel, objectStat(o.Size, o.LastModified, o.ETag));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      startAfter = undefined;
      // Once only: a server that orders keys otherwise (by UTF-16) still lists every key, the rest of its versions skipped one by one.
      if (token !== undefined && !jumped && contents[contents.length - 1]?.Key?.startsWith(versions)) {
        token = undefined;
        startAfter = versions + PAST;
        jumped = true;
      }
    } while (token !== undefined || startAfter !== undefined);
    return { files, internal };
  }

  // ---- the write side ----

  async upload(plan: UploadPlan): Promise<RemoteStat> {
    const key = this.key(plan.rel);
    if (plan.size <= SINGLE_PUT_MAX) {
      const buffer = borrow(plan.size);
      const read = await plan.read(buffer.subarray(0, plan.size));
      // Fewer bytes: the source shrank (more would change its stat, which is checked before the PUT).
      if (read !== plan.size) throw new StaleJob(`source ${plan.rel} has ${read} bytes, expected ${plan.size}`);
      const body = buffer.subarray(0, plan.size);
      plan.progress(body.length);
      await plan.verifySource();
      // What the key holds is kept as a version (a server-side copy) just before the PutObject replaces it.
      await plan.beforeCommit?.();
      const digest = md5(body);
      const hex = digest.copy().digest('hex');
      const contentMd5 = digest.digest('base64');
      // No abort signal: a request given one skips the SDK's cached middleware (a third more CPU
      // a request); a stop destroys the client, which ends what is in flight.
      const put = await this.conditionally(plan, (condition) =>
        this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length, ContentMD5: contentMd5, ...condition }),
        ),
      );
      checkEtag(put.ETag, hex, plan.rel);
      // Sent and answered: the buffer serves the next copy (after a failure it may still sit in a socket's queue).
      giveBack(buffer);
    } else {
      await this.multipart(plan, key);
    }
    // An upload's answer has no LastModified, which a listing compares: asked, for a small file
    // with the stats of the other copies that finish meanwhile (one listing answers them all); a
    // large one by HEAD (a listing would also read the objects being uploaded beside it).
    const st = plan.size > BATCHED_STAT_MAX ? await this.headStat(key) : await this.stats.stat(key, true);
    if (!st) throw new Error(`${plan.rel} is missing after its upload`);
    return st;
  }

  /**
   * Sends an upload's last request with `If-None-Match: *` when nothing may be replaced (a file
   * found there throws TargetExists); a server that refuses the condition itself gets it no more.
   */
  private async conditionally<T>(plan: UploadPlan, send: (condition: { IfNoneMatch?: string }) => Promise<T>): Promise<T> {
    if (!plan.ifAbsent || !this.conditional) return send({});
    try {
      return await send({ IfNoneMatch: '*' });
    } catch (err) {
      // 412: something is there; 409: another conditional write of the key is under way.
      if (statusOf(err) === 412 || statusOf(err) === 409) throw new TargetExists(plan.rel);
      if (!unsupported(err)) throw err;
      this.conditional = false;
      return send({});
    }
  }

  /**
   * A multipart upload that survives a crash: its id and its parts' ETags are kept in a partial
   * marker beside the file, and a new attempt takes up the same upload, skipping each part the
   * server holds (ListParts, or the marker where the server has no ListParts) whose MD5 matches
   * the source's bytes.
   */
  private async multipart(plan: UploadPlan, key: string): Promise<void> {
    const partSize = Math.max(PART_SIZE, Math.ceil(plan.size / 10_000));
    const count = Math.max(1, Math.ceil(plan.size / partSize));
    const markerKey = this.partialKey(plan.rel, plan.size, plan.mtime);
    let record = await this.readPartial(markerKey);
    let held = new Map<number, string>();
    if (record && (record.key !== key || record.partSize !== partSize)) record = null;
    if (record) {
      const listed = await this.listParts(record);
      if (listed === 'gone') record = null;
      else held = listed;
    }
    if (!record) {
      const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
      record = { uploadId: created.UploadId!, key, partSize, parts: {} };
      await this.writePartial(markerKey, record);
    } else if (held.size > 0) {
      plan.log('info', `resuming the upload of ${plan.rel}: ${held.size} of ${count} parts already on the server`, {
        path: plan.rel,
        parts: held.size,
      });
    }
    const done: { PartNumber: number; ETag: string }[] = [];
    let offset = 0;
    let part = 1;
    try {
      for await (const body of fixedChunks(await plan.open(0), partSize)) {
        const digest = md5(body);
        const hex = digest.copy().digest('hex');
        if (held.get(part) === hex) {
          done.push({ PartNumber: part, ETag: `"${hex}"` });
        } else {
          const up = await this.client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId: record.uploadId,
              PartNumber: part,
              Body: body,
              ContentLength: body.length,
              ContentMD5: digest.digest('base64'),
            }),
            { abortSignal: plan.signal },
          );
          checkEtag(up.ETag, hex, `${plan.rel} (part ${part})`);
          done.push({ PartNumber: part, ETag: up.ETag! });
          record.parts[String(part)] = hex;
          await this.writePartial(markerKey, record);
        }
        offset += body.length;
        plan.progress(offset);
        part++;
      }
      if (offset !== plan.size) throw new StaleJob(`source ${plan.rel} has ${offset} bytes, expected ${plan.size}`);
      await plan.verifySource();
      await plan.beforeCommit?.();
      const uploadId = record.uploadId;
      await this.conditionally(plan, (condition) =>
        this.client.send(
          new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: done }, ...condition }),
        ),
      );
    } catch (err) {
      // Another version of the source: this upload will never be completed.
      if (err instanceof StaleJob) await this.abandon(markerKey, record).catch(() => {});
      throw err;
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: markerKey })).catch(() => {});
  }

  private async readPartial(markerKey: string): Promise<PartialRecord | null> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: markerKey }));
      const text = Buffer.concat(await (got.Body as Readable).toArray()).toString('utf8');
      const record = JSON.parse(text) as PartialRecord;
      return typeof record.uploadId === 'string' && typeof record.parts === 'object' ? record : null;
    } catch (err) {
      if (isMissing(err) || err instanceof SyntaxError) return null;
      throw err;
    }
  }

  private async writePartial(markerKey: string, record: PartialRecord): Promise<void> {
    const body = Buffer.from(JSON.stringify(record));
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: markerKey, Body: body, ContentLength: body.length, ContentMD5: md5(body).digest('base64') }),
    );
  }

  /** The parts the server holds for an upload (number → MD5), or 'gone' when the upload is no more. */
  private async listParts(record: PartialRecord): Promise<Map<number, string> | 'gone'> {
    const parts = new Map<number, string>();
    try {
      let marker: string | undefined;
      do {
        const page = await this.client.send(
          new ListPartsCommand({ Bucket: this.bucket, Key: record.key, UploadId: record.uploadId, PartNumberMarker: marker }),
        );
        for (const p of page.Parts ?? []) if (p.PartNumber) parts.set(p.PartNumber, unquote(p.ETag));
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (marker);
      return parts;
    } catch (err) {
      if ((err as ErrorLike).name === 'NoSuchUpload') return 'gone';
      if (!unsupported(err)) throw err;
      // No ListParts here: the marker's record of the parts uploaded stands in.
      for (const [n, etag] of Object.entries(record.parts)) parts.set(Number(n), etag);
      return parts;
    }
  }

  private async abandon(markerKey: string, record: PartialRecord): Promise<void> {
    await this.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: record.key, UploadId: record.uploadId }))
      .catch((err) => {
        if (!unsupported(err) && (err as ErrorLike).name !== 'NoSuchUpload') throw err;
      });
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: markerKey }));
  }

  async remove(rel: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(rel) }));
  }

  /** A folder is its `rel/` marker object: S3 has no folders but the names' prefixes. */
  async folderStat(rel: string): Promise<RemoteStat | null> {
    return (await this.headStat(`${this.key(rel)}/`)) ? { ...FOLDER_STAT } : null;
  }

  async makeFolder(rel: string): Promise<RemoteStat> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: `${this.key(rel)}/`, Body: Buffer.alloc(0), ContentLength: 0 }));
    return { ...FOLDER_STAT };
  }

  async removeFolder(rel: string): Promise<void> {
    const marker = `${this.key(rel)}/`;
    const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: marker, MaxKeys: 2 }));
    // Its contents go first (their own jobs): until then it stays, and the job is tried again.
    if ((page.Contents ?? []).some((o) => o.Key !== marker)) throw new StaleJob(`${rel} is not empty yet; not deleted`);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: marker }));
  }

  /** A server-side copy, then the delete of the old name: no byte goes through Ferry. */
  async rename(from: string, to: string): Promise<void> {
    await this.copy(this.key(from), this.key(to));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(from) }));
  }

  /** CopyObject within the bucket. */
  private async copy(fromKey: string, toKey: string): Promise<void> {
    const source = `${this.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`;
    await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: toKey, CopySource: source }));
  }

  // ---- versions: objects under the prefix's `.ferry-versions/` ----

  private versionKey(key: string): string {
    const reason = unsafeReason(key);
    if (reason) throw new UnsafePathError(key, reason);
    return this.key(`${VERSIONS_FOLDER}/${key}`);
  }

  async listVersions(): Promise<{ key: string; size: number }[]> {
    const prefix = `${this.prefix}${VERSIONS_FOLDER}/`;
    const found: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        if (o.Key && !o.Key.endsWith('/')) found.push({ key: o.Key.slice(prefix.length), size: o.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return found;
  }

  async versionSize(key: string): Promise<number | null> {
    return (await this.headStat(this.versionKey(key)))?.size ?? null;
  }

  async copyToVersion(rel: string, key: string): Promise<void> {
    await this.copy(this.key(rel), this.versionKey(key));
  }

  /** The copy, then the delete; a delete that fails takes the copy back, and says why. */
  async moveToVersion(rel: string, key: string): Promise<void> {
    const version = this.versionKey(key);
    await this.copy(this.key(rel), version);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(rel) }));
    } catch (err) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: version })).catch(() => {});
      throw err;
    }
  }

  /**
   * CopyObject over the key (its LastModified, the file's mtime, is the copy's time), then the
   * version's delete. S3 keeps whole seconds: a file of the size of the one it replaces is copied
   * once the second that one was written in is over, so that the two never look the same.
   */
  async restoreVersion(key: string, rel: string, replacing: RemoteStat | null): Promise<RemoteStat> {
    const version = this.versionKey(key);
    if (replacing) {
      const wait = replacing.mtime + 1000 - Date.now();
      if (wait > 0 && wait <= 1000 && (await this.headStat(version))?.size === replacing.size) {
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    await this.copy(version, this.key(rel));
    const st = await this.headStat(this.key(rel));
    if (!st) throw new Error(`${rel} is missing after its restore`);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: version }));
    return st;
  }

  async removeVersion(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.versionKey(key) }));
  }

  async removeInternal(rel: string): Promise<void> {
    const key = this.key(rel);
    const name = path.posix.basename(rel);
    if (name.startsWith(`${INTERNAL_PREFIX}part-`)) {
      const record = await this.readPartial(key);
      if (record) return this.abandon(key, record);
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** Aborts the multipart uploads under the prefix left for too long (a crash before its marker was written). */
  async sweep(): Promise<number> {
    let aborted = 0;
    try {
      let keyMarker: string | undefined;
      let idMarker: string | undefined;
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, KeyMarker: keyMarker, UploadIdMarker: idMarker }),
        );
        for (const u of page.Uploads ?? []) {
          if (!u.Key || !u.UploadId) continue;
          if (Date.now() - (u.Initiated?.getTime() ?? Date.now()) < ABANDONED_AFTER_MS) continue;
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId })).catch(() => {});
          aborted++;
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        idMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      if (!unsupported(err)) throw err;
    }
    return aborted;
  }

  async writeMarker(): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(MARKER), Body: Buffer.alloc(0), ContentLength: 0 }));
  }
}

/** An object's stat, the same from a listing and from HEAD; the ETag is its identity (`ino`): a copy keeps it. */
function objectStat(size: number | undefined, modified: Date | undefined, etag: string | undefined): RemoteStat {
  const tag = unquote(etag);
  return { size: size ?? 0, mtime: seconds(modified), ino: tag || null, etag: tag };
}

/** The ETag a server returns for a plain upload or a part is its MD5: a mismatch means bytes were damaged on the way. */
function checkEtag(etag: string | undefined, hex: string, what: string): void {
  const got = unquote(etag);
  // Servers with server-side encryption (KMS) return other ETags: only an MD5-looking one is compared.
  if (/^[0-9a-f]{32}$/.test(got) && got !== hex) throw new Error(`integrity check failed for ${what}: the server stored MD5 ${got}, sent ${hex}`);
}

/** A stream cut into buffers of exactly `size` bytes (the last one shorter): one part each. */
async function* fixedChunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const c of stream) {
    let chunk = c as Buffer;
    while (chunk.length > 0) {
      const take = Math.min(size - held, chunk.length);
      parts.push(chunk.subarray(0, take));
      held += take;
      chunk = chunk.subarray(take);
      if (held === size) {
        yield Buffer.concat(parts, size);
        parts = [];
        held = 0;
      }
    }
  }
  if (held > 0) yield Buffer.concat(parts, held);
}
