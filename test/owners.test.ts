import { describe, expect, it } from 'vitest';
import { computeOwners, mimeMatches, pathMatches, ruleMatches } from '../src/rules/owners.js';
import type { Rule } from '../machines/rules.js';
import { SPEC_RULES } from './helpers.js';

describe('pathMatches', () => {
  it('matches on segment boundaries', () => {
    expect(pathMatches('/docs', 'docs')).toBe(true);
    expect(pathMatches('/docs', 'docs/a.txt')).toBe(true);
    expect(pathMatches('/docs', 'docs/sub/a.txt')).toBe(true);
    expect(pathMatches('/docs', 'docsx')).toBe(false);
    expect(pathMatches('/docs', 'docsx/a.txt')).toBe(false);
    expect(pathMatches('/docs', 'other/docs/a.txt')).toBe(false);
    expect(pathMatches('/docs/a', 'docs/ab.txt')).toBe(false);
    expect(pathMatches('/docs/a.txt', 'docs/a.txt')).toBe(true);
  });

  it('takes a prefix written with a trailing slash as the folder', () => {
    expect(pathMatches('/docs/', 'docs/a.txt')).toBe(true);
    expect(pathMatches('/docs/', 'docs')).toBe(true);
    expect(pathMatches('/docs/', 'docsx')).toBe(false);
    expect(pathMatches('/docs/', 'docsx/a.txt')).toBe(false);
  });

  it("'/' matches every file", () => {
    for (const name of ['a', 'a.txt', 'docs/a.txt', 'deep/er/still.bin', '.hidden']) {
      expect(pathMatches('/', name)).toBe(true);
    }
  });

  it('is case-sensitive', () => {
    expect(pathMatches('/Docs', 'docs/a.txt')).toBe(false);
  });
});

describe('mimeMatches', () => {
  it('matches any file when the rule names no types', () => {
    expect(mimeMatches(undefined, 'whatever.xyz')).toBe(true);
  });

  it('looks the type up from the name', () => {
    expect(mimeMatches(['application/pdf'], 'report.pdf')).toBe(true);
    expect(mimeMatches(['application/pdf'], 'REPORT.PDF')).toBe(true);
    expect(mimeMatches(['application/pdf'], 'report.txt')).toBe(false);
    expect(mimeMatches(['text/plain', 'application/pdf'], 'notes.txt')).toBe(true);
  });

  it("takes 'image/*' as every image type", () => {
    expect(mimeMatches(['image/*'], 'a.png')).toBe(true);
    expect(mimeMatches(['image/*'], 'photos/b.jpg')).toBe(true);
    expect(mimeMatches(['image/*'], 'c.svg')).toBe(true);
    expect(mimeMatches(['image/*'], 'd.pdf')).toBe(false);
    expect(mimeMatches(['image/*'], 'e.mp4')).toBe(false);
  });

  it('gives names of unknown type application/octet-stream', () => {
    expect(mimeMatches(['application/octet-stream'], 'README')).toBe(true);
    expect(mimeMatches(['text/plain'], 'README')).toBe(false);
  });
});

describe('ruleMatches', () => {
  it('needs both the path and the type to match', () => {
    const rule: Rule = { match: { path: '/backedup/', mime: ['application/pdf'] }, sync: ['B'] };
    expect(ruleMatches(rule, 'backedup/x.pdf')).toBe(true);
    expect(ruleMatches(rule, 'backedup/x.txt')).toBe(false);
    expect(ruleMatches(rule, 'x.pdf')).toBe(false);
  });
});

describe('computeOwners', () => {
  it("follows the spec's example rules", () => {
    expect(computeOwners('backedup/x.pdf', ['A'], SPEC_RULES)).toEqual(['A', 'B']);
    expect(computeOwners('backedup/x.txt', ['A'], SPEC_RULES)).toEqual(['A']);
    expect(computeOwners('notes.txt', ['B'], SPEC_RULES)).toEqual(['A', 'B']);
    expect(computeOwners('x.pdf', ['C'], SPEC_RULES)).toEqual(['A', 'C']);
  });

  it('keeps the holders of a file no rule matches', () => {
    const rules: Rule[] = [{ match: { path: '/docs' }, sync: ['A'] }];
    expect(computeOwners('other.txt', ['C', 'B'], rules)).toEqual(['B', 'C']);
    expect(computeOwners('other.txt', [], rules)).toEqual([]);
  });

  it('applies the rules in order: a ban after a sync removes, a sync after a ban adds back', () => {
    const sync: Rule = { match: { path: '/' }, sync: ['B'] };
    const ban: Rule = { match: { path: '/' }, ban: ['B'] };
    expect(computeOwners('a.txt', ['A'], [sync, ban])).toEqual(['A']);
    expect(computeOwners('a.txt', ['A'], [ban, sync])).toEqual(['A', 'B']);
  });

  it('bans an entry that holds the file', () => {
    const rules: Rule[] = [{ match: { path: '/private' }, ban: ['B'] }];
    expect(computeOwners('private/x', ['A', 'B'], rules)).toEqual(['A']);
    expect(computeOwners('public/x', ['A', 'B'], rules)).toEqual(['A', 'B']);
  });

  it('returns each owner once, sorted', () => {
    const rules: Rule[] = [
      { match: { path: '/' }, sync: ['C', 'A'] },
      { match: { path: '/x' }, sync: ['A', 'B'] },
    ];
    expect(computeOwners('x/y', ['C', 'B'], rules)).toEqual(['A', 'B', 'C']);
  });
});
