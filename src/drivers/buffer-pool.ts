/**
 * Large buffers reused from one copy to the next in a worker (a file read whole for an upload,
 * the chunks of a comparison): megabytes allocated per file keep the collector busy. Those no
 * copy asked for in a few seconds are dropped.
 */

/** Reads up to this size take a buffer of their own (the collector frees it with the next scavenge). */
const POOLED_MIN = 64 << 10;
/** Free buffers kept per size class (a power of two), and how long they are kept unused. */
const KEPT_PER_CLASS = 8;
const KEPT_MS = 5000;
const free = new Map<number, Buffer[]>();
let dropTimer: NodeJS.Timeout | null = null;

/**
 * A buffer of at least `size` bytes (a large one reused from the last copies). Given back once
 * nothing reads its bytes any more, it serves the next copy.
 */
export function borrow(size: number): Buffer {
  if (size < POOLED_MIN) return Buffer.allocUnsafe(size);
  const capacity = 2 ** Math.ceil(Math.log2(size));
  return free.get(capacity)?.pop() ?? Buffer.allocUnsafe(capacity);
}

/** A buffer from `borrow` whose bytes nothing reads any more (a request that failed may still be sending them: not given back). */
export function giveBack(buf: Buffer): void {
  const capacity = buf.buffer.byteLength;
  if (buf.length < POOLED_MIN || buf.byteOffset !== 0 || buf.length !== capacity || 2 ** Math.round(Math.log2(capacity)) !== capacity) return;
  const list = free.get(capacity) ?? [];
  if (list.length >= KEPT_PER_CLASS) return;
  list.push(buf);
  free.set(capacity, list);
  if (dropTimer) dropTimer.refresh();
  else {
    dropTimer = setTimeout(() => {
      free.clear();
      dropTimer = null;
    }, KEPT_MS);
    dropTimer.unref();
  }
}
