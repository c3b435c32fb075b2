// The writer of the bench's `flat` case: `node bench/write-flat.mjs DIR COUNT SIZE` creates DIR,
// then writes COUNT files of SIZE bytes into it with synchronous writes, as fast as it can.
// It runs as its own process so the bench can poll the other side while the writes go on.
// It prints `start <ms>` just before the first write and `done <ms>` after the last, in
// milliseconds since the epoch (performance.timeOrigin + performance.now(), as the bench counts).
// The bytes are the AES-128-CTR keystream of run.ts's bytesFor('flat', 0, COUNT × SIZE), sliced.
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const [dir, countArg, sizeArg] = process.argv.slice(2);
const count = Number(countArg);
const size = Number(sizeArg);
if (!dir || !(count > 0) || !(size >= 0)) throw new Error('usage: write-flat.mjs DIR COUNT SIZE');

const key = createHash('sha256').update('ferry-bench/flat').digest().subarray(0, 16);
const all = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(count * size));
const names = Array.from({ length: count }, (_, i) => path.join(dir, `f${String(i).padStart(6, '0')}.bin`));
const epoch = () => performance.timeOrigin + performance.now();

fs.mkdirSync(dir, { recursive: true });
process.stdout.write(`start ${epoch()}\n`);
for (let i = 0; i < count; i++) fs.writeFileSync(names[i], all.subarray(i * size, (i + 1) * size));
process.stdout.write(`done ${epoch()}\n`);
