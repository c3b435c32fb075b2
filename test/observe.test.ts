import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entryMachine } from '../machines/entry.js';
import { rulesMachine } from '../machines/rules.js';
import { statePath, toMermaid } from '../src/observe/mermaid.js';
import { alive, api, CLI, SPEC_RULES, startDaemon, tempDir, until, writeSetup, type RunningDaemon } from './helpers.js';
import { fileEvent, SseStream, transition, type SseEvent } from './sse.js';

/**
 * Issue 4, observability: the event stream (SSE, with resume), /debug/machines, /transfers,
 * /metrics, `ferry machines` and `ferry start --inspect`, against real daemons on temp folders.
 */

let dir: string;
let daemons: RunningDaemon[];
let streams: SseStream[];
let sockets: net.Socket[];

beforeEach(async () => {
  dir = await tempDir('ferry-observe-');
  daemons = [];
  streams = [];
  sockets = [];
});

afterEach(async (context) => {
  for (const s of streams) await s.close();
  for (const s of sockets) s.destroy();
  if (context.task.result?.state === 'fail') {
    for (const d of daemons) console.error(d.logs.map((l) => JSON.stringify(l)).join('\n') + d.stderr());
  }
  for (const d of daemons) await d.stop();
  await fsp.rm(dir, { recursive: true, force: true });
});

const ALL_TO_A_B = [{ match: { path: '/' }, sync: ['A', 'B'] }];

const at = (entry: string, rel: string) => path.join(dir, entry, rel);

async function daemon(rules: unknown[] = ALL_TO_A_B, extraArgs: string[] = []): Promise<RunningDaemon> {
  const setupFile = await writeSetup(dir, { entries: { A: 'A', B: 'B' }, rules });
  const d = await startDaemon(setupFile, extraArgs);
  daemons.push(d);
  return d;
}

/** Puts a file into an entry's root in one step (written beside, then renamed in): one change. */
async function place(entry: string, rel: string, content: string | Buffer): Promise<void> {
  const staging = path.join(dir, '.staging');
  await fsp.mkdir(staging, { recursive: true });
  const tmp = path.join(staging, randomBytes(6).toString('hex'));
  await fsp.writeFile(tmp, content);
  await fsp.mkdir(path.dirname(at(entry, rel)), { recursive: true });
  await fsp.rename(tmp, at(entry, rel));
}

const holds = (entry: string, rel: string, content: string | Buffer) => () => {
  try {
    return fs.readFileSync(at(entry, rel)).equals(Buffer.isBuffer(content) ? content : Buffer.from(content));
  } catch {
    return false;
  }
};

async function stream(d: RunningDaemon, query = '', headers: Record<string, string> = {}): Promise<SseStream> {
  const s = await SseStream.open(`${d.api}/events${query}`, headers);
  streams.push(s);
  expect(s.status).toBe(200);
  return s;
}

async function control(d: RunningDaemon, name: string, action: 'start' | 'stop' | 'restart'): Promise<void> {
  const res = await api(d.api, 'PUT', `/entries/${name}/${action}`);
  expect(res.status, `${action} ${name}: ${JSON.stringify(res.body)}`).toBe(200);
}

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

const transitionsOf = (events: SseEvent[], actor: string) =>
  events.filter(transition(actor)).map((e) => [e.data.from, e.data.to, e.data.event]);

/** Each actor's transitions chain: every `from` is the previous `to` (the first from is null). */
function expectChained(events: SseEvent[]): void {
  const last = new Map<string, string | null>();
  for (const e of events.filter((x) => x.event === 'transition')) {
    const actor = e.data.actor as string;
    if (last.has(actor)) expect(e.data.from, `from of ${JSON.stringify(e.data)}`).toBe(last.get(actor));
    expect(e.data.from).not.toBe(e.data.to);
    last.set(actor, e.data.to);
  }
}

/** Every event: its `id:` and `event:` lines agree with its data, which has the event's fields. */
function expectWellFormed(events: SseEvent[]): void {
  for (const e of events) {
    expect(e.id, JSON.stringify(e.data)).toEqual(expect.any(Number));
    expect(e.data).toMatchObject({ id: e.id, type: e.event, time: expect.any(Number) });
    if (e.event === 'transition') {
      expect(Object.keys(e.data).sort()).toEqual(['actor', 'entry', 'event', 'from', 'id', 'time', 'to', 'type']);
      expect(e.data.entry).toBe(e.data.actor === 'rules' ? null : e.data.actor.slice('entry:'.length));
    } else if (e.event === 'file') {
      expect(['changed', 'transferred', 'deleted', 'moved', 'conflict']).toContain(e.data.kind);
      expect(e.data).toMatchObject({ entry: expect.any(String), path: expect.any(String) });
    } else {
      expect(e.event).toBe('progress');
    }
  }
}

// ---------------------------------------------------------------------------------------------

describe('GET /api/v1.0/events: the event stream, end to end', () => {
  it('streams the start-up transitions, the file events of a write, and the transitions of stop and start', async () => {
    const d = await daemon();
    const s = await stream(d, '?since=0');
    expect(s.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    await s.waitFor('A running', transition('entry:A', 'active.running'));
    await s.waitFor('B running', transition('entry:B', 'active.running'));
    expect(s.retry).toBe(1000);

    // Start-up: from the backlog, every transition from the first.
    for (const name of ['A', 'B']) {
      expect(transitionsOf(s.events, `entry:${name}`)).toEqual([
        [null, 'stopped', 'xstate.init'],
        ['stopped', 'active.starting', 'entry.start'],
        ['active.starting', 'active.running', 'worker.ready'],
      ]);
    }
    expect(transitionsOf(s.events, 'rules')).toEqual([[null, 'ready', 'xstate.init']]);
    expect(s.ids().slice(0, 7)).toEqual(range(1, 7));

    // A file written in A: changed in A, then transferred to B.
    await place('A', 'docs/hello.txt', 'hello');
    const changedIn = await s.waitFor('changed in A', fileEvent('changed', 'A', 'docs/hello.txt'));
    const transferred = await s.waitFor('transferred to B', fileEvent('transferred', 'B', 'docs/hello.txt'));
    expect(transferred.id!).toBeGreaterThan(changedIn.id!);
    expect(changedIn.data).toEqual({ type: 'file', kind: 'changed', entry: 'A', path: 'docs/hello.txt', id: changedIn.id, time: expect.any(Number) });
    expect(holds('B', 'docs/hello.txt', 'hello')()).toBe(true);
    // B's copy is Ferry's own: it is not reported back as a change made in B.
    expect(s.events.some(fileEvent('changed', 'B', 'docs/hello.txt'))).toBe(false);

    // Stop and start B through the API: the transitions, with from, to and the event. Its worker
    // drains (asked to stop, it exits) before the entry is stopped.
    await control(d, 'B', 'stop');
    const draining = await s.waitFor('B draining', transition('entry:B', 'active.draining', 'active.running'));
    expect(draining.data).toMatchObject({ actor: 'entry:B', entry: 'B', from: 'active.running', to: 'active.draining', event: 'entry.stop' });
    const stopped = await s.waitFor('B stopped', transition('entry:B', 'stopped', 'active.draining'));
    expect(stopped.data).toMatchObject({ actor: 'entry:B', entry: 'B', from: 'active.draining', to: 'stopped', event: 'worker.exited' });
    await control(d, 'B', 'start');
    const starting = await s.waitFor('B starting', (e) => transition('entry:B', 'active.starting', 'stopped')(e) && e.id! > stopped.id!);
    const running = await s.waitFor('B running again', (e) => transition('entry:B', 'active.running')(e) && e.id! > starting.id!);
    expect(starting.data.event).toBe('entry.start');
    expect(running.data).toMatchObject({ from: 'active.starting', to: 'active.running', event: 'worker.ready' });

    // Everything in order, numbered without a hole, well formed, each actor's transitions chained.
    expect(s.ids()).toEqual(range(1, s.lastId()));
    expectWellFormed(s.events);
    expectChained(s.events);
    // A stream opened without since gets only what happens after it.
    const live = await stream(d);
    const before = s.lastId();
    await until('the live stream to be subscribed', () => live.comments.length > 0);
    expect(live.comments[0]).toBe(`ferry events, last id ${before}`);
    await place('A', 'later.txt', 'later');
    await live.waitFor('later.txt changed', fileEvent('changed', 'A', 'later.txt'));
    expect(live.ids()[0]).toBeGreaterThan(before);
    expect(live.events.some(transition('entry:A'))).toBe(false);
  });

  it('streams the transitions of an entry restart and of a rules reload', async () => {
    const d = await daemon();
    const s = await stream(d, '?since=0');
    const up = await s.waitFor('A running', transition('entry:A', 'active.running'));
    await control(d, 'A', 'restart');
    await s.waitFor('A running again', (e) => transition('entry:A', 'active.running')(e) && e.id! > up.id!);
    expect(transitionsOf(s.events, 'entry:A').slice(3)).toEqual([
      ['active.running', 'active.draining', 'entry.restart'],
      ['active.draining', 'active.starting', 'worker.exited'],
      ['active.starting', 'active.running', 'worker.ready'],
    ]);

    const staged = await api(d.api, 'PUT', '/rules', { rules: [{ match: { path: '/' }, sync: ['A'] }] });
    expect(staged.status, JSON.stringify(staged.body)).toBe(200);
    const reload = await api(d.api, 'PUT', '/rules/reload');
    expect(reload.status, JSON.stringify(reload.body)).toBe(200);
    await s.waitFor('rules ready again', transition('rules', 'ready', 'reloading'));
    expect(transitionsOf(s.events, 'rules')).toEqual([
      [null, 'ready', 'xstate.init'],
      ['ready', 'reloading', 'rules.reload'],
      ['reloading', 'ready', expect.stringMatching(/^xstate\.done\.actor\./)],
    ]);
    expectWellFormed(s.events);
    expectChained(s.events);
  });

  it('streams deleted and moved events, in the entry where they happened and in the entry that followed', async () => {
    const d = await daemon();
    const s = await stream(d, '?since=0');
    await place('A', 'a.txt', 'content of a');
    await s.waitFor('a.txt to B', fileEvent('transferred', 'B', 'a.txt'));
    await fsp.rename(at('A', 'a.txt'), at('A', 'b.txt'));
    const movedA = await s.waitFor('moved in A', fileEvent('moved', 'A', 'b.txt'));
    expect(movedA.data.from).toBe('a.txt');
    const movedB = await s.waitFor('moved in B', fileEvent('moved', 'B', 'b.txt'));
    expect(movedB.data.from).toBe('a.txt');
    await until('b.txt in B', holds('B', 'b.txt', 'content of a'));
    await fsp.rm(at('A', 'b.txt'));
    await s.waitFor('deleted in A', fileEvent('deleted', 'A', 'b.txt'));
    await s.waitFor('deleted in B', fileEvent('deleted', 'B', 'b.txt'));
    expect(fs.existsSync(at('B', 'b.txt'))).toBe(false);
    expectWellFormed(s.events);
  });

  it('reports a kept conflict copy as a file event of kind conflict', async () => {
    await fsp.mkdir(path.join(dir, 'A'), { recursive: true });
    await fsp.mkdir(path.join(dir, 'B'), { recursive: true });
    await fsp.writeFile(at('A', 'doc.txt'), 'the version in A');
    await fsp.writeFile(at('B', 'doc.txt'), 'the version in B, longer');
    const d = await daemon();
    const s = await stream(d, '?since=0');
    const conflict = await s.waitFor('a conflict event', (e) => e.event === 'file' && e.data.kind === 'conflict');
    expect(conflict.data).toMatchObject({ type: 'file', kind: 'conflict', path: 'doc.txt' });
    expect(conflict.data.conflict).toMatch(/^doc\.sync-conflict-\d{8}-\d{6}-[AB]\.txt$/);
    expect(['A', 'B']).toContain(conflict.data.entry);
    // The copy it names is there, in the entry that kept it.
    await until('the conflict copy', () => fs.existsSync(at(conflict.data.entry, conflict.data.conflict)));
  });

  /**
   * Issue 4's "Done when": a client that disconnects and reconnects from the last id it saw
   * misses no event and gets none twice. A witness stream stays connected all along.
   */
  async function resumeMissesNothing(reconnect: (d: RunningDaemon, seen: number) => Promise<SseStream>): Promise<void> {
    const d = await daemon();
    const witness = await stream(d, '?since=0');
    const first = await stream(d, '?since=0');
    await first.waitFor('A running', transition('entry:A', 'active.running'));
    await first.waitFor('B running', transition('entry:B', 'active.running'));
    await place('A', 'before.txt', 'before');
    await first.waitFor('before.txt to B', fileEvent('transferred', 'B', 'before.txt'));
    await first.close();
    const seen = first.lastId();
    const firstIds = first.ids();
    expect(firstIds).toEqual(range(1, seen));

    // While disconnected: several files, and B stopped (a file written meanwhile) and started.
    const names = ['away-1.txt', 'away-2.txt', 'sub/away-3.txt'];
    for (const n of names) await place('A', n, `content of ${n}`);
    for (const n of names) await until(`${n} in B`, holds('B', n, `content of ${n}`));
    // Every copy reported done before B stops (else a copy cut short is done again on start).
    for (const n of names) await witness.waitFor(`${n} to B`, fileEvent('transferred', 'B', n));
    await control(d, 'B', 'stop');
    await place('A', 'while-stopped.txt', 'B was stopped');
    await witness.waitFor('while-stopped.txt changed', fileEvent('changed', 'A', 'while-stopped.txt'));
    await control(d, 'B', 'start');
    await until('while-stopped.txt in B', holds('B', 'while-stopped.txt', 'B was stopped'));
    const last = (await witness.waitFor('while-stopped.txt to B', fileEvent('transferred', 'B', 'while-stopped.txt'))).id!;

    const second = await reconnect(d, seen);
    await second.waitFor(`event ${last}`, (e) => e.id === last);
    const secondEvents = [...second.events];
    expect(secondEvents.some((e) => e.event === 'gap')).toBe(false);
    const secondIds = secondEvents.map((e) => e.id);
    expect(secondIds[0]).toBe(seen + 1);
    // Across both connections: every id from the first on, once, in order.
    expect([...firstIds, ...secondIds]).toEqual(range(1, secondIds[secondIds.length - 1]!));

    // What happened while disconnected is in the second connection.
    for (const n of names) {
      expect(secondEvents.some(fileEvent('changed', 'A', n)), `changed ${n}`).toBe(true);
      expect(secondEvents.some(fileEvent('transferred', 'B', n)), `transferred ${n}`).toBe(true);
    }
    expect(transitionsOf(secondEvents, 'entry:B')).toEqual([
      ['active.running', 'active.draining', 'entry.stop'],
      ['active.draining', 'stopped', 'worker.exited'],
      ['stopped', 'active.starting', 'entry.start'],
      ['active.starting', 'active.running', 'worker.ready'],
    ]);
    expect(secondEvents.some(fileEvent('changed', 'A', 'while-stopped.txt'))).toBe(true);
    expect(secondEvents.some(fileEvent('transferred', 'B', 'while-stopped.txt'))).toBe(true);

    // The same events, field for field, as the client that never left.
    const resumed = [...first.events, ...secondEvents];
    await until('the witness to catch up', () => witness.lastId() >= resumed[resumed.length - 1].id!);
    expect(resumed).toEqual(witness.events.slice(0, resumed.length));
    expectWellFormed(resumed);
    expectChained(resumed);

    // Once more, from the end of the second connection: nothing again, then only what is new.
    await second.close();
    const third = await reconnect(d, second.lastId());
    await place('A', 'after.txt', 'after');
    await third.waitFor('after.txt to B', fileEvent('transferred', 'B', 'after.txt'));
    expect(third.ids()[0]).toBe(second.lastId() + 1);
    expect([...second.ids(), ...third.ids()]).toEqual(range(seen + 1, third.lastId()));
  }

  it('a client that reconnects with ?since=<last id> misses no event and gets none twice', async () => {
    await resumeMissesNothing((d, seen) => stream(d, `?since=${seen}`));
  });

  it('the same with the Last-Event-ID header', async () => {
    await resumeMissesNothing((d, seen) => stream(d, '', { 'Last-Event-ID': String(seen) }));
  });

  it("the same as an EventSource reconnects: its first URL's ?since=0 plus Last-Event-ID", async () => {
    await resumeMissesNothing((d, seen) => stream(d, '?since=0', { 'Last-Event-ID': String(seen) }));
  });

  it('refuses a bad since or Last-Event-ID with 400 in the error format', async () => {
    const d = await daemon();
    for (const [query, headers] of [
      ['?since=abc', {}],
      ['?since=-1', {}],
      ['', { 'Last-Event-ID': 'abc' }],
    ] as [string, Record<string, string>][]) {
      const raw = await fetch(`${d.api}/events${query}`, { headers });
      expect(raw.status, query).toBe(400);
      expect(await raw.json()).toEqual({ reason: expect.stringMatching(/since|Last-Event-ID/), status: 'error' });
    }
  });

  it('a daemon stops on SIGTERM while a client holds a connection it sent nothing on', async () => {
    // Browsers keep spare sockets open; fetch opens one after an aborted event stream.
    const d = await daemon();
    const s = await stream(d, '?since=0');
    await s.waitFor('B running', transition('entry:B', 'active.running'));
    await s.close();
    const { hostname, port } = new URL(d.url);
    const idle = net.connect(Number(port), hostname);
    sockets.push(idle);
    await new Promise((resolve, reject) => idle.once('connect', resolve).once('error', reject));
    d.process.kill('SIGTERM');
    await until('the daemon to exit', () => d.process.exitCode !== null || d.process.signalCode !== null, 20_000);
    expect(d.process.exitCode).toBe(0);
  });

  it('a daemon stopped with a client connected ends the stream and exits 0', async () => {
    const d = await daemon();
    const s = await stream(d, '?since=0');
    await s.waitFor('B running', transition('entry:B', 'active.running'));
    expect(await d.stop('SIGTERM')).toBe(0);
    await s.closed();
    expect(s.ended).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------

describe('GET /api/v1.0/debug/machines', () => {
  const definition = (machine: { toJSON(): unknown }) => JSON.parse(JSON.stringify(machine.toJSON())) as unknown;

  const actorOf = async (d: RunningDaemon, id: string) => {
    const res = await api(d.api, 'GET', '/debug/machines');
    expect(res.status).toBe(200);
    return (res.body.actors as { id: string }[]).find((a) => a.id === id) as any;
  };

  it("answers the machines' definitions, their mermaid diagrams and every actor's live state", async () => {
    const d = await daemon();
    // Once the entries' first dispatches are done (nothing to do: they wait for work).
    const res = (await until('both entries waiting for work', async () => {
      const r = await api(d.api, 'GET', '/debug/machines');
      return r.body.actors.filter((a: { path: string[] }) => a.path.join('.') === 'active.running.waiting').length === 2 ? r : null;
    }))!;
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['actors', 'machines', 'mermaid']);
    expect(Object.keys(res.body.machines).sort()).toEqual(['entry', 'rules']);
    expect(res.body.machines.entry).toEqual(definition(entryMachine));
    expect(res.body.machines.rules).toEqual(definition(rulesMachine));
    expect(res.body.machines.entry.id).toBe('entry');
    expect(res.body.machines.rules.id).toBe('rules');
    expect(Object.keys(res.body.machines.entry.states).sort()).toEqual(['active', 'restarting', 'stopped']);
    expect(Object.keys(res.body.machines.entry.states.active.states).sort()).toEqual(['draining', 'running', 'starting']);
    // The dispatch's states, and its guards, actions and delays, are in the definition and the drawing.
    expect(Object.keys(res.body.machines.entry.states.active.states.running.states).sort()).toEqual(['backingOff', 'dispatching', 'waiting']);
    for (const name of ['dispatchRefused', 'dispatchAsked', 'retryWaiting', 'slotsFree', 'massDeletionRefused', 'restartAsked']) {
      expect(res.body.mermaid.entry).toContain(`[${name}]`);
    }
    expect(res.body.mermaid.entry).toContain('after retryDue');
    expect(res.body.mermaid.entry).toContain('after drainTimeout');
    expect(JSON.stringify(res.body.machines.entry)).toContain('"dispatchJobs"');
    expect(Object.keys(res.body.machines.rules.states).sort()).toEqual(['ready', 'reloading']);
    expect(res.body.mermaid.entry.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(res.body.mermaid.rules.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(res.body.mermaid.entry).toBe(toMermaid(definition(entryMachine)));
    expect(res.body.mermaid.rules).toBe(toMermaid(definition(rulesMachine)));

    const pidOf = async (name: string) => (await api(d.api, 'GET', `/entries/${name}/stats`)).body.info.pid as number;
    expect(res.body.actors).toEqual([
      {
        id: 'rules',
        machine: 'rules',
        state: 'ready',
        path: ['ready'],
        context: { staged: 1, active: 1, lastError: null },
      },
      ...(await Promise.all(
        ['A', 'B'].map(async (name) => ({
          id: `entry:${name}`,
          machine: 'entry',
          entry: name,
          // Running, waiting for work: nothing is due.
          state: { active: { running: 'waiting' } },
          path: ['active', 'running', 'waiting'],
          context: { queue: 0, restarts: 0, failures: 0, lastError: null, pid: await pidOf(name), watch: { folders: expect.any(Number), watched: expect.any(Number), polled: 0 } },
        })),
      )),
    ]);
    // Without --inspect, no inspection events are logged, even at debug level.
    expect(d.logs.some((l) => l.msg === 'xstate')).toBe(false);
  });

  it('shows the live state as entries are stopped and started', async () => {
    const d = await daemon();
    // Running, and once its first dispatch is done, waiting for work.
    const running = await until('B waiting for work', async () => {
      const b = await actorOf(d, 'entry:B');
      return b.path.join('.') === 'active.running.waiting' ? b : null;
    });
    const pid = running.context.pid as number;
    expect(pid).toEqual(expect.any(Number));
    expect(alive(pid)).toBe(true);

    await control(d, 'B', 'stop');
    const stopped = await actorOf(d, 'entry:B');
    expect(stopped).toMatchObject({ state: 'stopped', path: ['stopped'] });
    expect(stopped.context).toEqual({ queue: 0, restarts: 0, failures: 0, lastError: null, pid: null, watch: null });
    expect((await actorOf(d, 'entry:A')).path).toEqual(['active', 'running', 'waiting']);
    await until('the old worker to be gone', () => !alive(pid));

    await control(d, 'B', 'start');
    const settled = await until('B waiting for work', async () => {
      const b = await actorOf(d, 'entry:B');
      return b.path.join('.') === 'active.running.waiting' ? b : null;
    });
    expect(settled).toMatchObject({ state: { active: { running: 'waiting' } }, path: ['active', 'running', 'waiting'] });
    const again = settled;
    expect(again.context.pid).toEqual(expect.any(Number));
    expect(again.context.pid).not.toBe(pid);
    expect(again.context.pid).toBe((await api(d.api, 'GET', '/entries/B/stats')).body.info.pid);
  });

  it('counts files queued for a stopped entry in its context', async () => {
    const d = await daemon();
    await control(d, 'B', 'stop');
    await place('A', 'one.txt', '1');
    await place('A', 'two.txt', '22');
    await until('B to have 2 jobs', async () => (await actorOf(d, 'entry:B')).context.queue === 2);
    expect((await actorOf(d, 'entry:A')).context.queue).toBe(0);
    await control(d, 'B', 'start');
    await until('B to drain', async () => (await actorOf(d, 'entry:B')).context.queue === 0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('GET /api/v1.0/transfers', () => {
  const board = async (d: RunningDaemon) => {
    const res = await api(d.api, 'GET', '/transfers');
    expect(res.status).toBe(200);
    return res.body as { entries: { name: string; queued: number; running: any[]; waiting: any[] }[] };
  };
  const entryOf = async (d: RunningDaemon, name: string) => (await board(d)).entries.find((e) => e.name === name)!;

  it('answers each entry with its queued count, running and waiting jobs', async () => {
    const d = await daemon(SPEC_RULES);
    expect(await board(d)).toEqual({
      entries: [
        { name: 'A', queued: 0, running: [], waiting: [] },
        { name: 'B', queued: 0, running: [], waiting: [] },
      ],
    });
  });

  it("shows the files a stopped entry waits for, and they drain once it starts", async () => {
    const d = await daemon(SPEC_RULES);
    await control(d, 'B', 'stop');
    const r1 = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(3000)]);
    const r2 = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(5000)]);
    await place('A', 'backedup/r1.pdf', r1);
    await place('A', 'backedup/r2.pdf', r2);
    await place('A', 'notes.txt', 'not for B'); // the rules give it to A only
    await until('B to wait for 2 files', async () => (await entryOf(d, 'B')).queued === 2);
    // notes.txt is in the catalogue too: B simply does not own it.
    await until('notes.txt known', async () => (await api(d.api, 'GET', '/files')).body.files.length === 3);
    const b = await entryOf(d, 'B');
    expect(b.running).toEqual([]);
    expect(b.waiting.map((j) => j.filename).sort()).toEqual(['backedup/r1.pdf', 'backedup/r2.pdf']);
    for (const job of b.waiting) {
      expect(job).toMatchObject({ id: expect.any(Number), kind: 'upload', attempts: 0, lastError: null });
      expect(job.size).toBe(job.filename.endsWith('r1.pdf') ? r1.length : r2.length);
    }
    expect(await entryOf(d, 'A')).toEqual({ name: 'A', queued: 0, running: [], waiting: [] });
    // /metrics agrees.
    const m = parseMetrics((await metricsText(d)).text);
    expect(sample(m, 'ferry_queue_length', { entry: 'B' })).toBe(2);
    expect(sample(m, 'ferry_queue_length', { entry: 'A' })).toBe(0);

    await control(d, 'B', 'start');
    await until('B to drain', async () => {
      const e = await entryOf(d, 'B');
      return e.queued === 0 && e.waiting.length === 0 && e.running.length === 0;
    });
    expect(holds('B', 'backedup/r1.pdf', r1)()).toBe(true);
    expect(holds('B', 'backedup/r2.pdf', r2)()).toBe(true);
    expect(fs.existsSync(at('B', 'notes.txt'))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Metrics {
  samples: Sample[];
  types: Map<string, string>;
}

async function metricsText(d: RunningDaemon): Promise<{ text: string; type: string | null }> {
  const res = await fetch(`${d.url}/metrics`);
  expect(res.status).toBe(200);
  return { text: await res.text(), type: res.headers.get('content-type') };
}

/** Parses the text exposition format 0.0.4, checking every line as it goes. */
function parseMetrics(text: string): Metrics {
  expect(text.endsWith('\n')).toBe(true);
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (comment) {
      const [, kind, name, rest] = comment;
      if (kind === 'TYPE') {
        expect(['counter', 'gauge'], line).toContain(rest);
        expect(types.has(name), `one TYPE for ${name}`).toBe(false);
        types.set(name, rest);
      } else {
        helps.add(name);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `a sample line: ${JSON.stringify(line)}`).not.toBeNull();
    const [, name, rawLabels, rawValue] = m!;
    const labels: Record<string, string> = {};
    if (rawLabels) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let l: RegExpExecArray | null;
      let consumed = 0;
      while ((l = re.exec(rawLabels))) {
        labels[l[1]] = l[2];
        consumed = re.lastIndex;
        if (l[3] === '') break;
      }
      expect(consumed, `labels of ${line}`).toBe(rawLabels.length);
    }
    const value = Number(rawValue);
    expect(Number.isNaN(value), `value of ${line}`).toBe(false);
    // Every sample follows its family's TYPE and HELP.
    expect(types.has(name), `TYPE before ${line}`).toBe(true);
    expect(helps.has(name), `HELP before ${line}`).toBe(true);
    if (types.get(name) === 'counter') {
      expect(name.endsWith('_total'), `counter ${name} ends in _total`).toBe(true);
      expect(value).toBeGreaterThanOrEqual(0);
    }
    samples.push({ name, labels, value });
  }
  return { samples, types };
}

/** The value of the sample with exactly these labels; undefined when there is none. */
function sample(m: Metrics, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = m.samples.filter(
    (s) => s.name === name && Object.keys(s.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  expect(found.length, `${name}${JSON.stringify(labels)} at most once`).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

const metrics = async (d: RunningDaemon) => parseMetrics((await metricsText(d)).text);

/** Waits until the metrics satisfy `check`; on a time-out, says what they were. */
async function untilMetrics(d: RunningDaemon, what: string, check: (m: Metrics) => boolean): Promise<void> {
  let last = '';
  await until(what, async () => {
    const { text } = await metricsText(d);
    last = text;
    return check(parseMetrics(text));
  }).catch((err: Error) => {
    throw new Error(`${err.message}; last metrics:\n${last.split('\n').filter((l) => !l.startsWith('#')).join('\n')}`);
  });
}

describe('GET /metrics', () => {
  it('answers the Prometheus text format with the entries, files, transfers, queues and processes', async () => {
    const d = await daemon();
    // Workers are sampled from the moment they are ready: the first samples come at once.
    await untilMetrics(d, 'both workers sampled', (m) => ['A', 'B'].every((e) => sample(m, 'ferry_worker_resident_memory_bytes', { entry: e })! > 0));
    const { text, type } = await metricsText(d);
    expect(type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const m = parseMetrics(text);
    expect(sample(m, 'ferry_entries', { state: 'active' })).toBe(2);
    expect(sample(m, 'ferry_entries', { state: 'stopped' })).toBe(0);
    expect(sample(m, 'ferry_entries', { state: 'restarting' })).toBe(0);
    for (const name of ['A', 'B']) {
      expect(sample(m, 'ferry_entry_up', { entry: name })).toBe(1);
      expect(sample(m, 'ferry_entry_restarts_total', { entry: name })).toBe(0);
      expect(sample(m, 'ferry_queue_length', { entry: name })).toBe(0);
      expect(sample(m, 'ferry_transferred_files_total', { entry: name })).toBe(0);
      expect(sample(m, 'ferry_transferred_bytes_total', { entry: name })).toBe(0);
      expect(sample(m, 'ferry_worker_resident_memory_bytes', { entry: name })).toBeGreaterThan(0);
      expect(sample(m, 'ferry_worker_cpu_seconds_total', { entry: name })).toBeGreaterThanOrEqual(0);
    }
    expect(sample(m, 'ferry_files_tracked')).toBe(0);
    expect(sample(m, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sample(m, 'process_heap_used_bytes')).toBeGreaterThan(0);
    expect(sample(m, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    const startTime = sample(m, 'process_start_time_seconds')!;
    expect(startTime).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(startTime).toBeGreaterThan(Date.now() / 1000 - 3600);
    expect(m.types.get('ferry_entries')).toBe('gauge');
    expect(m.types.get('ferry_transferred_files_total')).toBe('counter');

    // A transfer to B: B's counters grow by the file and its bytes; A's do not.
    const content = randomBytes(12_345);
    await place('A', 'data.bin', content);
    await until('data.bin in B', holds('B', 'data.bin', content));
    await untilMetrics(d, 'the transfer counted', (m) => sample(m, 'ferry_transferred_files_total', { entry: 'B' }) === 1);
    const after = await metrics(d);
    expect(sample(after, 'ferry_transferred_bytes_total', { entry: 'B' })).toBe(content.length);
    expect(sample(after, 'ferry_transferred_files_total', { entry: 'A' })).toBe(0);
    expect(sample(after, 'ferry_transferred_bytes_total', { entry: 'A' })).toBe(0);

    // Files tracked: as many as the catalogue lists.
    await place('A', 'x/one.txt', 'one');
    await place('B', 'two.txt', 'two');
    await until('three files in both', () => holds('B', 'x/one.txt', 'one')() && holds('A', 'two.txt', 'two')());
    await untilMetrics(d, '3 files tracked', (m) => sample(m, 'ferry_files_tracked') === 3);
    expect((await api(d.api, 'GET', '/files')).body.files).toHaveLength(3);
    await untilMetrics(
      d,
      'both copies counted',
      (m) => sample(m, 'ferry_transferred_files_total', { entry: 'B' }) === 2 && sample(m, 'ferry_transferred_files_total', { entry: 'A' }) === 1,
    );
    const more = await metrics(d);
    expect(sample(more, 'ferry_transferred_bytes_total', { entry: 'B' })).toBe(content.length + 3);
    expect(sample(more, 'ferry_transferred_files_total', { entry: 'A' })).toBe(1);
    // A deleted file is no longer tracked.
    await fsp.rm(at('A', 'x/one.txt'));
    await until('x/one.txt gone from B', () => !fs.existsSync(at('B', 'x/one.txt')));
    await untilMetrics(d, '2 files tracked', (m) => sample(m, 'ferry_files_tracked') === 2);
    await untilMetrics(d, 'the deletion counted', (m) => sample(m, 'ferry_deleted_files_total', { entry: 'B' }) === 1);

    // A stopped entry: counted as stopped, down, and without a worker to measure.
    await control(d, 'B', 'stop');
    const stopped = await metrics(d);
    expect(sample(stopped, 'ferry_entries', { state: 'active' })).toBe(1);
    expect(sample(stopped, 'ferry_entries', { state: 'stopped' })).toBe(1);
    expect(sample(stopped, 'ferry_entry_up', { entry: 'B' })).toBe(0);
    expect(sample(stopped, 'ferry_worker_resident_memory_bytes', { entry: 'B' })).toBeUndefined();
    expect(sample(stopped, 'ferry_worker_resident_memory_bytes', { entry: 'A' })).toBeGreaterThan(0);
    // Counters stay.
    expect(sample(stopped, 'ferry_transferred_files_total', { entry: 'B' })).toBe(2);
  });

  it("counts a worker's unexpected exit in ferry_entry_restarts_total once it is back", async () => {
    const d = await daemon();
    const s = await stream(d, '?since=0');
    const up = await s.waitFor('A running', transition('entry:A', 'active.running'));
    const stats = await api(d.api, 'GET', '/entries/A/stats');
    expect(stats.status).toBe(200);
    const pid = stats.body.info.pid as number;
    process.kill(pid, 'SIGKILL');
    await until('A restarted with a new worker', async () => {
      const s = await api(d.api, 'GET', '/entries/A/stats');
      return s.status === 200 && s.body.info.pid !== pid;
    });
    const m = await metrics(d);
    expect(sample(m, 'ferry_entry_restarts_total', { entry: 'A' })).toBe(1);
    expect(sample(m, 'ferry_entry_restarts_total', { entry: 'B' })).toBe(0);
    expect(sample(m, 'ferry_entries', { state: 'active' })).toBe(2);
    expect(sample(m, 'ferry_entry_up', { entry: 'A' })).toBe(1);
    expect(sample(m, 'ferry_worker_resident_memory_bytes', { entry: 'A' })).toBeGreaterThan(0);
    // The machines view agrees, and says why.
    const a = (await api(d.api, 'GET', '/debug/machines')).body.actors.find((x: { id: string }) => x.id === 'entry:A');
    expect(a.context.restarts).toBe(1);
    expect(a.context.lastError).toMatch(/SIGKILL/);
    expect(a.path.slice(0, 2)).toEqual(['active', 'running']);
    // The stream told the whole story: the exit, the back-off, the new worker.
    await s.waitFor('A running again', (e) => transition('entry:A', 'active.running')(e) && e.id! > up.id!);
    expect(transitionsOf(s.events, 'entry:A').slice(3)).toEqual([
      ['active.running', 'restarting', 'worker.exited'],
      ['restarting', 'active.starting', expect.stringMatching(/^xstate\.after\.backoff\./)],
      ['active.starting', 'active.running', 'worker.ready'],
    ]);
    // And the new worker still syncs.
    await place('A', 'after-crash.txt', 'still syncing');
    await until('after-crash.txt in B', holds('B', 'after-crash.txt', 'still syncing'));
  });
});

// ---------------------------------------------------------------------------------------------

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ferry(args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env.FERRY_API;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('ferry machines', () => {
  it('prints the machines as JSON, as mermaid blocks, or one bare diagram; refuses an unknown format', async () => {
    const d = await daemon();
    const json = await ferry(['machines', '--api', d.url]);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout);
    expect(Object.keys(parsed).sort()).toEqual(['actors', 'machines', 'mermaid']);
    expect(parsed.machines.entry.id).toBe('entry');
    expect(parsed.machines.rules.id).toBe('rules');
    expect(parsed.actors.map((a: { id: string }) => a.id)).toEqual(['rules', 'entry:A', 'entry:B']);

    const one = await ferry(['machines', '--api', d.url, '--machine', 'entry']);
    expect(one.code, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toEqual(JSON.parse(JSON.stringify(entryMachine.toJSON())));

    const md = await ferry(['machines', '--api', d.url, '--format', 'mermaid']);
    expect(md.code, md.stderr).toBe(0);
    const blocks = [...md.stdout.matchAll(/^## (\w+)\n\n```mermaid\n([\s\S]*?)```$/gm)];
    expect(blocks.map((b) => b[1])).toEqual(['entry', 'rules']);
    expect(md.stdout.match(/```mermaid/g)).toHaveLength(2);
    expect(blocks[0][2]).toBe(parsed.mermaid.entry);
    expect(blocks[1][2]).toBe(parsed.mermaid.rules);
    for (const b of blocks) expect(b[2].startsWith('stateDiagram-v2\n')).toBe(true);

    const bare = await ferry(['machines', '--api', d.url, '--format', 'mermaid', '--machine', 'rules']);
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stdout.startsWith('stateDiagram-v2\n')).toBe(true);
    expect(bare.stdout).not.toContain('```');
    expect(bare.stdout.trimEnd()).toBe(parsed.mermaid.rules.trimEnd());

    const xml = await ferry(['machines', '--api', d.url, '--format', 'xml']);
    expect(xml.code).toBe(2);
    expect(xml.stdout).toBe('');
    expect(xml.stderr).toMatch(/--format/);
    const unknown = await ferry(['machines', '--api', d.url, '--machine', 'daemon']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--machine/);
  });

  it('exits 3 when no daemon answers', async () => {
    const gone = await ferry(['machines', '--api', 'http://127.0.0.1:9']);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('http://127.0.0.1:9');
  });
});

// ---------------------------------------------------------------------------------------------

describe('ferry start --inspect', () => {
  it('logs every XState inspection event at debug level', async () => {
    const d = await daemon(ALL_TO_A_B, ['--inspect']);
    const inspections = () => d.logs.filter((l) => l.msg === 'xstate');
    await until('inspection lines', () => inspections().length > 0);
    const kinds = new Set(inspections().map((l) => l.inspection));
    expect(kinds).toContain('@xstate.event');
    expect(kinds).toContain('@xstate.snapshot');
    expect(kinds).toContain('@xstate.actor');
    for (const l of inspections()) {
      expect(l.level).toBe(20); // pino's debug
      expect(String(l.inspection)).toMatch(/^@xstate\./);
    }
    const actors = new Set(inspections().map((l) => l.actor));
    for (const id of ['rules', 'entry:A', 'entry:B']) expect(actors).toContain(id);
    expect(inspections().some((l) => l.inspection === '@xstate.event' && l.actor === 'entry:A' && l.event === 'entry.start')).toBe(true);
    // Live: a stop shows up too.
    await control(d, 'B', 'stop');
    await until('entry.stop inspected', () => inspections().some((l) => l.actor === 'entry:B' && l.event === 'entry.stop'));
  });
});

// ---------------------------------------------------------------------------------------------

describe('toMermaid and statePath', () => {
  interface Node {
    id: string;
    key: string;
    states?: Record<string, Node>;
  }
  const json = (machine: { toJSON(): unknown }) => JSON.parse(JSON.stringify(machine.toJSON())) as Node;
  const allStates = (node: Node): Node[] => Object.values(node.states ?? {}).flatMap((c) => [c, ...allStates(c)]);
  const mermaidId = (id: string) => id.replace(/[^A-Za-z0-9_]/g, '_');

  for (const [name, machine] of [
    ['entry', entryMachine],
    ['rules', rulesMachine],
  ] as const) {
    it(`the ${name} machine's diagram declares every state of the machine`, () => {
      const text = toMermaid(machine.toJSON());
      expect(text.startsWith('stateDiagram-v2\n')).toBe(true);
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.trimEnd().split('\n');
      const states = allStates(json(machine));
      expect(states.length).toBeGreaterThan(1);
      for (const state of states) {
        const id = mermaidId(state.id);
        const declared = lines.some((l) => l.trim() === `${id} : ${state.key}` || l.trim() === `state "${state.key}" as ${id} {`);
        expect(declared, `${state.id} declared in\n${text}`).toBe(true);
      }
      // Every line is one mermaid statement: a header, a state, a block, an edge, a class.
      for (const line of lines.slice(1)) {
        expect(line, text).toMatch(
          /^\s*(\w+ : [^:;#"]+|state "[^"]+" as \w+ \{|\}|\[\*\] --> \w+|\w+ --> \w+ : [^:;#"]+|classDef current .+|class \w+ current)$/,
        );
      }
      // Nothing is marked current without a current path.
      expect(text).not.toContain('class ');
    });
  }

  it("the entry diagram has the machine's edges, with readable event names", () => {
    const text = toMermaid(entryMachine.toJSON());
    expect(text).toContain('  [*] --> entry_stopped\n');
    expect(text).toContain('entry_stopped --> entry_active : entry.start\n');
    // One edge per pair of states, labelled with every transition between them.
    expect(text).toContain('entry_active --> entry_restarting : worker.exited, entry.suspend, error\n');
    expect(text).toContain('entry_active --> entry_stopped : worker.failed, entry.refuse\n');
    expect(text).toContain('entry_active --> entry_active_draining : entry.stop, entry.restart\n');
    expect(text).toContain('entry_active_draining --> entry_stopped : worker.exited, entry.suspend, after drainTimeout\n');
    expect(text).toContain('entry_active_draining --> entry_active : worker.exited [restartAsked], after drainTimeout [restartAsked]\n');
    expect(text).toContain('entry_active_starting --> entry_active_running : worker.ready\n');
    expect(text).toContain('entry_active_starting --> entry_stopped : worker.ready [massDeletionRefused]\n');
    expect(text).toContain('entry_active_running_dispatching --> entry_active_running_waiting : done\n');
    expect(text).toContain('entry_active_running_dispatching --> entry_active_running_dispatching : done [dispatchAsked]\n');
    expect(text).toContain('entry_active_running_dispatching --> entry_active_running_backingOff : done [retryWaiting]\n');
    expect(text).toContain('entry_active_running_dispatching --> entry_stopped : done [dispatchRefused]\n');
    expect(text).toContain('entry_active_running_waiting --> entry_active_running_dispatching : jobs.available [slotsFree]\n');
    expect(text).toContain('entry_active_running_backingOff --> entry_active_running_dispatching : jobs.available [slotsFree], after retryDue [slotsFree]\n');
    expect(text).toContain('entry_active_running_backingOff --> entry_active_running_waiting : after retryDue\n');
    expect(text).toContain('entry_restarting --> entry_active : entry.start, after backoff\n');
    expect(text.match(/-->/g)).toHaveLength(3 + 19);
    expect(text).not.toContain('xstate.after');
    // The composite state holds its children.
    expect(text).toMatch(
      /state "active" as entry_active \{\n\s+entry_active_starting : starting\n\s+\[\*\] --> entry_active_starting\n\s+state "running" as entry_active_running \{\n\s+entry_active_running_dispatching : dispatching\n\s+\[\*\] --> entry_active_running_dispatching\n\s+entry_active_running_waiting : waiting\n\s+entry_active_running_backingOff : backingOff\n\s+\}\n\s+entry_active_draining : draining\n\s+\}/,
    );
  });

  it('the rules diagram shows guards and the outcomes of the invoked actor', () => {
    const text = toMermaid(rulesMachine.toJSON());
    expect(text).toContain('rules_ready --> rules_reloading : rules.reload [stagedDiffers]\n');
    expect(text).toContain('rules_reloading --> rules_ready : done, error\n');
  });

  it('a current path marks each state on it with the class current', () => {
    const text = toMermaid(entryMachine.toJSON(), ['active', 'running']);
    expect(text).toContain('classDef current ');
    expect(text).toContain('  class entry_active current\n');
    expect(text).toContain('  class entry_active_running current\n');
    expect(text).not.toContain('class entry_stopped current');
    const stopped = toMermaid(entryMachine.toJSON(), ['stopped']);
    expect(stopped.match(/^ {2}class \w+ current$/gm)).toEqual(['  class entry_stopped current']);
    // A path the machine does not have marks nothing.
    expect(toMermaid(entryMachine.toJSON(), ['nowhere'])).not.toMatch(/^ {2}class /m);
    // The definition or its JSON: the same diagram.
    expect(toMermaid(json(entryMachine), ['active', 'running'])).toBe(text);
  });

  it("every diagram parses with mermaid's own parser", async () => {
    // Mermaid sanitises labels with DOMPurify, which needs a DOM; the parse needs none of it.
    const { default: DOMPurify } = await import('dompurify');
    Object.assign(DOMPurify, { addHook() {}, removeHook() {}, removeHooks() {}, sanitize: (text: unknown) => String(text) });
    const { default: mermaid } = await import('mermaid');
    await expect(mermaid.parse('stateDiagram-v2\n  a --> : x\n')).rejects.toThrow(/Parse error/);
    for (const text of [
      toMermaid(entryMachine.toJSON()),
      toMermaid(entryMachine.toJSON(), ['active', 'running']),
      toMermaid(entryMachine.toJSON(), ['restarting']),
      toMermaid(rulesMachine.toJSON()),
      toMermaid(rulesMachine.toJSON(), ['reloading']),
    ]) {
      expect(await mermaid.parse(text), text).toMatchObject({ diagramType: 'stateDiagram' });
    }
  });

  it('statePath turns a state value into a path', () => {
    expect(statePath('stopped')).toEqual(['stopped']);
    expect(statePath({ active: 'running' })).toEqual(['active', 'running']);
    expect(statePath({ a: { b: 'c' } })).toEqual(['a', 'b', 'c']);
    expect(statePath({})).toEqual([]);
    expect(statePath(null)).toEqual([]);
    expect(statePath(undefined)).toEqual([]);
  });

  it('statePath of live actor snapshots', async () => {
    const { createActor } = await import('xstate');
    const actor = createActor(
      entryMachine.provide({
        actors: { worker: (await import('xstate')).fromCallback(() => () => {}), sampler: (await import('xstate')).fromCallback(() => () => {}) },
      }),
      { input: { name: 'A' } },
    ).start();
    expect(statePath(actor.getSnapshot().value)).toEqual(['stopped']);
    actor.send({ type: 'entry.start' });
    expect(statePath(actor.getSnapshot().value)).toEqual(['active', 'starting']);
    actor.send({ type: 'worker.ready', pid: 1 });
    expect(statePath(actor.getSnapshot().value)).toEqual(['active', 'running', 'dispatching']);
    actor.stop();
  });
});
