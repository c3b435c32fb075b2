import { Readable, Writable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';

/**
 * Pipelined SFTP reads and writes. ssh2's own streams keep one request in flight, so each
 * chunk waits a round trip; these keep several (as OpenSSH's sftp and rclone do) while the
 * bytes in flight stay bounded (a few MiB per copy, whatever the file's size).
 */

/** Bytes of requests in flight per stream. */
const WINDOW_BYTES = 4 << 20;

/** The largest read or write one request carries on this session (OpenSSH allows 254 KiB). */
export function requestSize(sftp: SFTPWrapper, which: '_maxReadLen' | '_maxWriteLen'): number {
  const n = (sftp as unknown as Record<string, unknown>)[which];
  return typeof n === 'number' && n > 0 ? n : 32 * 1024;
}

function readAt(sftp: SFTPWrapper, handle: Buffer, position: number, length: number, lost: Promise<never>): Promise<Buffer> {
  const read = new Promise<Buffer>((resolve, reject) => {
    const buf = Buffer.allocUnsafe(length);
    sftp.read(handle, buf, 0, length, position, (err, bytesRead) => {
      if (err) {
        // End of file: nothing more to read.
        if ((err as { code?: unknown }).code === 1) resolve(buf.subarray(0, 0));
        else reject(err);
      } else resolve(buf.subarray(0, bytesRead));
    });
  });
  return Promise.race([read, lost]);
}

/** Exactly `length` bytes at `position`, or fewer only at the end of the file. */
async function readFull(sftp: SFTPWrapper, handle: Buffer, position: number, length: number, lost: Promise<never>): Promise<Buffer> {
  const first = await readAt(sftp, handle, position, length, lost);
  if (first.length === length || first.length === 0) return first;
  const parts = [first];
  let got = first.length;
  while (got < length) {
    const more = await readAt(sftp, handle, position + got, length - got, lost);
    if (more.length === 0) break;
    parts.push(more);
    got += more.length;
  }
  return Buffer.concat(parts);
}

/**
 * The bytes of an open file from `start` to `size` (its size when opened), read a window of
 * requests ahead. `onClose` runs once, when the stream ends or is destroyed.
 */
export function sftpReadStream(
  sftp: SFTPWrapper,
  handle: Buffer,
  start: number,
  size: number,
  onClose: () => void,
  /** Rejects when the connection is lost (ssh2 then never answers the reads in flight). */
  lost: Promise<never>,
): Readable {
  const chunk = requestSize(sftp, '_maxReadLen');
  const depth = Math.max(1, Math.floor(WINDOW_BYTES / chunk));
  async function* chunks() {
    const window: Promise<Buffer>[] = [];
    let next = start;
    try {
      for (;;) {
        while (window.length < depth && next < size) {
          const len = Math.min(chunk, size - next);
          const p = readFull(sftp, handle, next, len, lost);
          p.catch(() => {}); // awaited below, in order; a stream destroyed early leaves it unawaited
          window.push(p);
          next += len;
        }
        if (window.length === 0) return;
        const buf = await window.shift()!;
        if (buf.length === 0) return; // the file shrank: the copy's checks will tell
        yield buf;
      }
    } finally {
      onClose();
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
}

/**
 * Writes into an open file from `start` on, several requests in flight; `progress` is told
 * the position written up to (every request before it acknowledged).
 */
export class SftpWriteStream extends Writable {
  private position: number;
  private inflight = 0;
  private inflightBytes = 0;
  private failure: Error | null = null;
  private resume: (() => void) | null = null;
  private readonly piece: number;
  /** Acknowledged requests' ends, in order: the written prefix is what every earlier one covers. */
  private readonly pending: { end: number; done: boolean }[] = [];
  private acknowledged: number;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly handle: Buffer,
    start: number,
    private readonly progress: (position: number) => void,
    /** Rejects when the connection is lost: ssh2 then never answers the writes in flight. */
    lost: Promise<never>,
    private readonly batch: () => void = () => {},
  ) {
    super({ highWaterMark: 1 << 20 });
    lost.catch((err: Error) => {
      this.failure ??= err;
      this.inflight = 0;
      this.inflightBytes = 0;
      this.wake();
    });
    this.position = start;
    this.acknowledged = start;
    this.piece = requestSize(sftp, '_maxWriteLen');
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.failure) return callback(this.failure);
    this.batch();
    for (let off = 0; off < chunk.length; off += this.piece) {
      const len = Math.min(this.piece, chunk.length - off);
      const slot = { end: this.position + len, done: false };
      this.pending.push(slot);
      this.inflight++;
      this.inflightBytes += len;
      this.sftp.write(this.handle, chunk, off, len, this.position, (err) => {
        this.inflight--;
        this.inflightBytes -= len;
        if (err) this.failure ??= err;
        else {
          slot.done = true;
          while (this.pending.length > 0 && this.pending[0].done) this.acknowledged = this.pending.shift()!.end;
          this.progress(this.acknowledged);
        }
        this.wake();
      });
      this.position += len;
    }
    if (this.inflightBytes < WINDOW_BYTES) return callback();
    this.resume = () => callback(this.failure);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.inflight === 0) return callback(this.failure);
    this.resume = () => {
      if (this.inflight === 0 || this.failure) callback(this.failure);
      else this.resume = this.resumeFinal(callback);
    };
  }

  private resumeFinal(callback: (error?: Error | null) => void): () => void {
    return () => {
      if (this.inflight === 0 || this.failure) callback(this.failure);
      else this.resume = this.resumeFinal(callback);
    };
  }

  private wake(): void {
    if (!this.resume) return;
    if (this.failure || this.inflightBytes < WINDOW_BYTES) {
      const r = this.resume;
      this.resume = null;
      r();
    }
  }
}
