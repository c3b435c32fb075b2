#!/usr/bin/env node
// The hottest functions of one or more V8 .cpuprofile files (from `node --cpu-prof`):
// self time and inclusive time per function, summed over the files given.
//
//   node bench/profile-top.mjs PROFILE.cpuprofile… [--top 30] [--filter dist/]
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
let top = 30;
let filter = null;
let callers = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]);
  else if (args[i] === '--filter') filter = args[++i];
  else if (args[i] === '--callers') callers = args[++i];
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: node bench/profile-top.mjs PROFILE.cpuprofile… [--top N] [--filter SUBSTRING]');
  process.exit(2);
}

const self = new Map();
/** For --callers NAME: the stacks (a few frames up) of the samples whose own function is NAME. */
const stacks = new Map();
const inclusive = new Map();
let totalMs = 0;

for (const file of files) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Time per sample: the delta to the next one (the last sample gets the mean).
  const ms = new Map();
  const deltas = profile.timeDeltas ?? [];
  const mean = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  profile.samples.forEach((id, i) => {
    const d = i + 1 < deltas.length ? deltas[i + 1] / 1000 : mean;
    ms.set(id, (ms.get(id) ?? 0) + d);
  });
  const key = (n) => {
    const f = n.callFrame;
    const where = f.url ? `${path.relative(process.cwd(), f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '';
    return `${f.functionName || '(anonymous)'} ${where}`.trim();
  };
  for (const [id, t] of ms) {
    totalMs += t;
    const n = byId.get(id);
    self.set(key(n), (self.get(key(n)) ?? 0) + t);
    if (callers && key(n).startsWith(callers)) {
      const frames = [];
      for (let cur = parent.get(id); cur !== undefined && frames.length < 6; cur = parent.get(cur)) frames.push(key(byId.get(cur)));
      const k = frames.join(' < ');
      stacks.set(k, (stacks.get(k) ?? 0) + t);
    }
    // Inclusive: every distinct function on the stack gets the sample once.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur));
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + t);
    }
  }
}

const show = (title, map) => {
  console.log(`\n${title} (of ${totalMs.toFixed(0)} ms sampled)`);
  const rows = [...map].filter(([k]) => !filter || k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, t] of rows) console.log(`${t.toFixed(1).padStart(9)} ms ${((t / totalMs) * 100).toFixed(1).padStart(5)}%  ${k}`);
};
show('self time', self);
show('inclusive time', inclusive);
if (callers) show(`where ${callers} is called from`, stacks);
