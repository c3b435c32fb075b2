import type { FastifyPluginAsync } from 'fastify';
import { waitFor, type AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import { ApiError, errorSchema } from '../errors.js';
import { okSchema, rulesBodySchema as rulesBody } from '../schemas.js';
import { validateRules } from '../../rules/validate.js';
import type { RulesContext } from '../../../machines/rules.js';

const RELOAD_TIMEOUT_MS = 120_000;

export const rulesRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  const rules = () => ctx.system.get('rules') as AnyActorRef;
  const names = new Set(ctx.entries.keys());

  app.get('/rules', { schema: { response: { 200: rulesBody } } }, async () => ({
    rules: (rules().getSnapshot().context as RulesContext).staged,
  }));

  app.get(
    '/rules/diff',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            required: ['changes'],
            properties: {
              changes: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['fid', 'filename', 'gain', 'lose'],
                  properties: {
                    fid: { type: 'string' },
                    filename: { type: 'string' },
                    gain: { type: 'array', items: { type: 'string' } },
                    lose: { type: 'array', items: { type: 'string' } },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => ({ changes: ctx.diffRules((rules().getSnapshot().context as RulesContext).staged) }),
  );

  app.put<{ Body: unknown }>(
    '/rules',
    { schema: { response: { 200: okSchema, 400: errorSchema, 409: errorSchema } } },
    async (request) => {
      const body = request.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body) || !('rules' in body)) {
        throw new ApiError(400, 'body must be a JSON object with a "rules" list');
      }
      const extra = Object.keys(body).filter((k) => k !== 'rules');
      if (extra.length > 0) throw new ApiError(400, `${extra[0]}: unknown field`);
      const checked = validateRules((body as { rules: unknown }).rules, names);
      if (!checked.ok) throw new ApiError(400, checked.reason);
      const event = { type: 'rules.stage', rules: checked.value };
      if (!rules().getSnapshot().can(event)) throw new ApiError(409, 'rules are being reloaded; try again');
      rules().send(event);
      return { status: 'ok' };
    },
  );

  app.put(
    '/rules/reload',
    { schema: { response: { 200: okSchema, 409: errorSchema, 500: errorSchema } } },
    async () => {
      const actor = rules();
      if (!actor.getSnapshot().can({ type: 'rules.reload' })) throw new ApiError(409, 'rules are being reloaded');
      actor.send({ type: 'rules.reload' });
      const done = await waitFor(actor, (s) => s.matches('ready'), { timeout: RELOAD_TIMEOUT_MS });
      const { lastError } = done.context as RulesContext;
      if (lastError) throw new ApiError(500, `rules reload failed: ${lastError}`);
      return { status: 'ok' };
    },
  );
};
