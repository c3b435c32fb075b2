// Builds the dashboard into dist/dashboard/: index.html, and under assets/ the bundle of
// src/dashboard/main.ts (esbuild, one ES module with its source map) and style.css.
// The daemon serves that folder (src/api/routes/dashboard.ts); mermaid is not bundled: the
// daemon serves its browser build from node_modules. esbuild does not type-check: that is
// `npm run typecheck` (src/dashboard/tsconfig.json).
import { build } from 'esbuild';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(repo, 'src/dashboard');
const out = path.join(repo, 'dist/dashboard');

await fs.rm(out, { recursive: true, force: true });
await build({
  entryPoints: [path.join(source, 'main.ts')],
  outfile: path.join(out, 'assets/app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  minify: process.env.NODE_ENV === 'production',
  legalComments: 'none',
  logLevel: 'warning',
  tsconfig: path.join(source, 'tsconfig.json'),
});
await fs.copyFile(path.join(source, 'index.html'), path.join(out, 'index.html'));
await fs.copyFile(path.join(source, 'style.css'), path.join(out, 'assets/style.css'));
