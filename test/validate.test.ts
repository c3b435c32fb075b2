import { describe, expect, it } from 'vitest';
import { validateRules } from '../src/rules/validate.js';

const NAMES = new Set(['A', 'B']);
const reason = (value: unknown) => {
  const result = validateRules(value, NAMES);
  if (result.ok) throw new Error(`expected ${JSON.stringify(value)} to be refused`);
  return result.reason;
};

describe('validateRules', () => {
  it('accepts good rules and gives copies of them', () => {
    const input = [
      { match: { path: '/' }, sync: ['A'] },
      { match: { path: '/backedup/', mime: ['application/pdf', 'image/*'] }, sync: ['B'], ban: ['A'] },
      { match: { path: '/private' }, ban: ['B'] },
    ];
    const result = validateRules(input, NAMES);
    expect(result).toEqual({ ok: true, value: input });
    if (!result.ok) return;
    expect(result.value[0]!.sync).not.toBe(input[0]!.sync);
    expect(validateRules([], NAMES)).toEqual({ ok: true, value: [] });
  });

  it('refuses what is not a list', () => {
    expect(reason({ match: { path: '/' }, sync: ['A'] })).toBe('rules: must be a list of rules');
    expect(reason(null)).toBe('rules: must be a list of rules');
    expect(reason('rules')).toBe('rules: must be a list of rules');
  });

  it('names the place it was given', () => {
    const result = validateRules(1, NAMES, 'body.rules');
    expect(result).toEqual({ ok: false, reason: 'body.rules: must be a list of rules' });
  });

  it('refuses a rule that is not an object', () => {
    expect(reason([{ match: { path: '/' }, sync: ['A'] }, 'x'])).toBe('rules[1]: must be an object');
    expect(reason([[]])).toBe('rules[0]: must be an object');
  });

  it('refuses unknown fields', () => {
    expect(reason([{ match: { path: '/' }, sync: ['A'], copy: ['B'] }])).toBe('rules[0].copy: unknown field');
    expect(reason([{ match: { path: '/', glob: '*.pdf' }, sync: ['A'] }])).toBe('rules[0].match.glob: unknown field');
  });

  it('refuses a missing match', () => {
    expect(reason([{ sync: ['A'] }])).toBe('rules[0].match: must be an object');
    expect(reason([{ match: '/', sync: ['A'] }])).toBe('rules[0].match: must be an object');
  });

  it('refuses a path that is not a string, or not absolute', () => {
    expect(reason([{ match: {}, sync: ['A'] }])).toBe('rules[0].match.path: must be a string');
    expect(reason([{ match: { path: 3 }, sync: ['A'] }])).toBe('rules[0].match.path: must be a string');
    expect(reason([{ match: { path: 'docs' }, sync: ['A'] }])).toBe('rules[0].match.path: must start with "/"');
  });

  it('refuses a mime that is not a list of types', () => {
    expect(reason([{ match: { path: '/', mime: 'application/pdf' }, sync: ['A'] }])).toBe(
      'rules[0].match.mime: must be a list of strings',
    );
    const bad = 'must be a MIME type such as "image/png" or "image/*"';
    expect(reason([{ match: { path: '/', mime: ['image/png', 'pdf'] }, sync: ['A'] }])).toBe(`rules[0].match.mime[1]: ${bad}`);
    expect(reason([{ match: { path: '/', mime: [7] }, sync: ['A'] }])).toBe(`rules[0].match.mime[0]: ${bad}`);
    expect(reason([{ match: { path: '/', mime: ['*/*'] }, sync: ['A'] }])).toBe(`rules[0].match.mime[0]: ${bad}`);
  });

  it('refuses a rule with neither sync nor ban', () => {
    expect(reason([{ match: { path: '/' } }])).toBe('rules[0]: needs "sync" or "ban"');
  });

  it('refuses sync and ban lists that are not lists of known entries', () => {
    expect(reason([{ match: { path: '/' }, sync: 'A' }])).toBe('rules[0].sync: must be a list of entry names');
    expect(reason([{ match: { path: '/' }, ban: { A: true } }])).toBe('rules[0].ban: must be a list of entry names');
    expect(reason([{ match: { path: '/' }, sync: [1] }])).toBe('rules[0].sync[0]: must be an entry name');
    expect(reason([{ match: { path: '/' }, sync: ['A'] }, { match: { path: '/' }, sync: ['C'] }])).toBe(
      'rules[1].sync[0]: unknown entry "C"',
    );
    expect(reason([{ match: { path: '/' }, sync: ['A'], ban: ['B', 'Z'] }])).toBe('rules[0].ban[1]: unknown entry "Z"');
  });
});
