import type { FastifyPluginAsync, RawServerDefault } from 'fastify';
import { waitFor, type AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import { ApiError } from '../errors.js';
import type { SchemaTypes } from '../json-schema.js';
import { errorSchema, okSchema, rulesDiffSchema, rulesSchema } from '../schemas.js';
import { validateRules } from '../../rules/validate.js';
import type { RulesContext } from '../../../machines/rules.js';

const RELOAD_TIMEOUT_MS = 120_000;
const PREVIEW_TIMEOUT_MS = 60_000;

export const rulesRoutes: FastifyPluginAsync<ApiContext, RawServerDefault, SchemaTypes> = async (app, ctx) => {
  const rules = () => ctx.system.get('rules') as AnyActorRef;
  const names = new Set(ctx.entries.keys());

  app.get(
    '/rules',
    {
      schema: {
        operationId: 'getRules',
        tags: ['rules'],
        summary: 'Get the staged rules (the active ones, unless new rules were staged and not reloaded).',
        response: { 200: rulesSchema },
      },
    },
    async () => ({
      rules: (rules().getSnapshot().context as RulesContext).staged,
    }),
  );

  app.get(
    '/rules/diff',
    {
      schema: {
        operationId: 'diffRules',
        tags: ['rules'],
        summary: 'What a reload would change: for each file whose owners would change, the entries it gains and loses.',
        response: { 200: rulesDiffSchema },
      },
    },
    async () => {
      // The rules actor computes the preview; the request waits for it (the newest asked).
      const actor = rules();
      actor.send({ type: 'rules.preview' });
      const asked = (actor.getSnapshot().context as RulesContext).previewsAsked;
      const done = await waitFor(actor, (s) => ((s.context as RulesContext).preview?.id ?? 0) >= asked, {
        timeout: PREVIEW_TIMEOUT_MS,
      }).catch(() => {
        throw new ApiError(503, `the preview of the rules did not finish within ${PREVIEW_TIMEOUT_MS / 1000} s`);
      });
      return { changes: (done.context as RulesContext).preview!.changes };
    },
  );

  app.put(
    '/rules',
    {
      schema: {
        operationId: 'putRules',
        tags: ['rules'],
        summary: 'Stage new rules (checked; a 400 names the fault). Nothing moves until a reload.',
        // Checked by the handler, not by the schema: its 400 names the rule and field at fault.
        requestBody: rulesSchema,
        response: { 200: okSchema, 400: errorSchema, 409: errorSchema, 413: errorSchema, 415: errorSchema },
      },
    },
    async (request) => {
      const body: unknown = request.body;
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
      return { status: 'ok' as const };
    },
  );

  app.put(
    '/rules/reload',
    {
      schema: {
        operationId: 'reloadRules',
        tags: ['rules'],
        summary: 'Apply the staged rules (if they changed since the last time), and write them into the setup file.',
        response: { 200: okSchema, 400: errorSchema, 409: errorSchema, 413: errorSchema, 415: errorSchema, 500: errorSchema },
      },
    },
    async () => {
      const actor = rules();
      if (!actor.getSnapshot().can({ type: 'rules.reload' })) throw new ApiError(409, 'rules are being reloaded');
      actor.send({ type: 'rules.reload' });
      const done = await waitFor(actor, (s) => s.matches('ready'), { timeout: RELOAD_TIMEOUT_MS });
      const { lastError } = done.context as RulesContext;
      if (lastError) throw new ApiError(500, `rules reload failed: ${lastError}`);
      return { status: 'ok' as const };
    },
  );
};
