import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyPluginAsync } from 'fastify';
import type { ApiContext } from '../app.js';
import { DASHBOARD_HTML } from '../../dashboard/page.js';

/** mermaid's browser bundle, served from our own dependencies: the page loads nothing from the internet. */
const MERMAID = createRequire(import.meta.url).resolve('mermaid/dist/mermaid.min.js');

export const dashboardRoutes: FastifyPluginAsync<ApiContext> = async (app) => {
  app.get('/', async (_request, reply) => {
    reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-cache');
    return DASHBOARD_HTML;
  });
  app.get('/assets/mermaid.min.js', async (_request, reply) => {
    reply.type('text/javascript; charset=utf-8').header('Cache-Control', 'public, max-age=86400');
    return fs.createReadStream(MERMAID);
  });
};
