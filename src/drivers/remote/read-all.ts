import type { Readable } from 'node:stream';

/** The stream's first `into.length` bytes at most, copied into `into`; returns how many (the stream is destroyed once `into` is full). */
export async function readInto(stream: Readable, into: Buffer): Promise<number> {
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).copy(into, n);
    if (n === into.length) {
      stream.destroy();
      break;
    }
  }
  return n;
}
