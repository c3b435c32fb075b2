import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errorBody } from './errors.js';

/** Addresses only this machine can reach: binding them needs no token. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Routes anyone may load: the dashboard's page and assets hold no data. */
const PUBLIC = (url: string) => url === '/' || url.startsWith('/assets/');

function presentedToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    return m ? m[1] : null;
  }
  // EventSource cannot send headers: the event stream also takes ?access_token=.
  if (request.method === 'GET' && request.url.startsWith('/api/v1.0/events')) {
    const token = new URL(request.url, 'http://x').searchParams.get('access_token');
    return token;
  }
  return null;
}

/**
 * With a token, every request (but the dashboard's page) must carry `Authorization: Bearer TOKEN`;
 * the comparison takes the same time whatever the guess. With a CORS origin, that origin (and
 * only it) may call the API from a browser; without one, no CORS header is ever sent.
 */
export function installAccessControl(app: FastifyInstance, options: { token?: string; cors?: string }): void {
  const { token, cors } = options;
  if (cors) {
    app.addHook('onRequest', async (request, reply) => {
      reply.header('Access-Control-Allow-Origin', cors);
      reply.header('Vary', 'Origin');
      if (request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
        reply
          .header('Access-Control-Allow-Methods', 'GET, PUT, OPTIONS')
          .header('Access-Control-Allow-Headers', 'Authorization, Content-Type, Last-Event-ID')
          .header('Access-Control-Max-Age', '600')
          .code(204)
          .send();
      }
    });
  }
  if (token) {
    const expected = digest(token);
    app.addHook('onRequest', async (request, reply) => {
      if (reply.sent || PUBLIC(request.url.split('?')[0])) return;
      const given = presentedToken(request);
      if (given !== null && timingSafeEqual(digest(given), expected)) return;
      reply
        .code(401)
        .header('WWW-Authenticate', 'Bearer realm="ferry"')
        .header('Vary', 'Accept')
        .send(errorBody(given === null ? 'missing bearer token (Authorization: Bearer TOKEN)' : 'wrong bearer token'));
    });
  }
}
