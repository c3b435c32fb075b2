// Bundles the daemon (`ferry start`) and its worker into dist/daemon/ with esbuild: two entry
// points and the chunks they share, our code and the pure-JS packages it loads (Fastify, ajv,
// XState, chokidar…) in a few files. Node then starts them from a handful of files instead of
// some 400 modules: about 0.15 s less to the daemon's first fork and 0.05 s to each worker's
// start (README, Performance). Left out, and loaded from node_modules as usual: native addons
// (better-sqlite3, ssh2's optional cpu-features), pino-pretty (a transport: its worker thread
// loads pino's files by path, so the logger of a terminal is made by pino as installed, see
// src/logger.ts; pino itself is bundled) and the remote drivers' SDKs (loaded only by a worker
// of such an entry).
// dist/src/ stays as tsc builds it: the CLI's client commands, and the tests, use it; the CLI
// starts the bundle when it is there (src/cli.ts). esbuild does not type-check: tsc does.
import { build } from 'esbuild';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(repo, 'dist/daemon');

await fs.rm(out, { recursive: true, force: true });
await build({
  entryPoints: {
    'cli-start': path.join(repo, 'src/cli-start.ts'),
    'worker-host': path.join(repo, 'src/drivers/worker-host.ts'),
  },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
  external: ['better-sqlite3', 'pino-pretty', 'ssh2', 'cpu-features', '@aws-sdk/*', '@smithy/*', 'mermaid'],
  // The worker's entry point sits beside the daemon's (src/entry-worker.ts).
  define: { __FERRY_BUNDLED__: 'true' },
  // CommonJS packages in an ES module bundle: their `require` of Node's modules.
  banner: { js: "import { createRequire as __ferryRequire } from 'node:module'; const require = __ferryRequire(import.meta.url);" },
});
