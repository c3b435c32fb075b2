import { errorSchema } from './errors.js';

const names = { type: 'array', items: { type: 'string' } } as const;

export const fileSchema = {
  type: 'object',
  required: ['fid', 'filename', 'size', 'owners', 'uptodate'],
  properties: {
    fid: { type: 'string' },
    filename: { type: 'string' },
    size: { type: 'integer' },
    owners: names,
    uptodate: names,
  },
} as const;

export const entrySchema = {
  type: 'object',
  required: ['name', 'driver', 'options'],
  properties: {
    name: { type: 'string' },
    driver: { type: 'string' },
    options: { type: 'object', additionalProperties: true },
  },
} as const;

export const ruleSchema = {
  type: 'object',
  required: ['match'],
  properties: {
    match: {
      type: 'object',
      required: ['path'],
      properties: { path: { type: 'string' }, mime: names },
    },
    sync: names,
    ban: names,
  },
} as const;

/** `{"rules": [...]}`: the body of PUT /rules and the answer of GET /rules. */
export const rulesBodySchema = {
  type: 'object',
  required: ['rules'],
  properties: { rules: { type: 'array', items: ruleSchema } },
} as const;

export const okSchema = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', const: 'ok' } },
} as const;

/** `{"name", "status", "time"}`: the answer of status, start, stop and restart. */
export const entryStatusSchema = {
  type: 'object',
  required: ['name', 'status', 'time'],
  properties: {
    name: { type: 'string' },
    status: { type: 'string' },
    time: { type: 'number' },
    /** Only when there is something to say: why the entry stopped, or what keeps failing. */
    reason: { type: 'string' },
  },
} as const;

export const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string' } },
} as const;

export { errorSchema };
