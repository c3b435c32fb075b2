import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import type { ApiContext } from '../app.js';
import { ApiError } from '../errors.js';

/** The folder holding package.json: this module runs from src/ (tests) or dist/src/ (built). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** The dashboard as `npm run build` leaves it (scripts/build-dashboard.mjs): index.html and assets/. */
export const DASHBOARD_DIR = path.join(packageRoot(), 'dist/dashboard');

/** mermaid's browser bundle, served from our own dependencies: the page loads nothing from the internet. */
const MERMAID = createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');

/**
 * The dashboard: its page at `/` and its files under `/assets/` (both public: they hold no
 * data; the page asks for the token when the API wants one). Each answer is revalidated
 * (no-cache with an ETag), so a rebuilt dashboard is seen on the next load.
 */
export const dashboardRoutes: FastifyPluginAsync<ApiContext> = async (app) => {
  const built = fs.existsSync(path.join(DASHBOARD_DIR, 'index.html'));
  if (built) {
    await app.register(fastifyStatic, {
      root: path.join(DASHBOARD_DIR, 'assets'),
      prefix: '/assets/',
      index: false,
      cacheControl: false,
      setHeaders: (reply) => void reply.header('Cache-Control', 'no-cache'),
    });
  }
  app.get('/', async (_request, reply) => {
    if (!built) throw new ApiError(503, 'the dashboard is not built: run npm run build');
    reply.header('Cache-Control', 'no-cache');
    return reply.sendFile('index.html', DASHBOARD_DIR, { cacheControl: false });
  });
  // Before the static files' wildcard route: a route of its own wins.
  app.get('/assets/mermaid.min.js', async (_request, reply) => {
    reply.type('text/javascript; charset=utf-8').header('Cache-Control', 'public, max-age=86400');
    return fs.createReadStream(MERMAID);
  });
};
