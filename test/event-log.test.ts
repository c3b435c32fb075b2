import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventLog, type FerryEvent, type LoggedEvent } from '../src/observe/event-log.js';
import { installErrorHandling } from '../src/api/errors.js';
import { observeRoutes } from '../src/api/routes/observe.js';
import { SseStream, type SseEvent } from './sse.js';
import { until } from './helpers.js';

/** The event log on its own, then the `/events` route over a small log, in-process. */

const changed = (path: string): FerryEvent => ({ type: 'file', kind: 'changed', entry: 'A', path });

function filled(count: number, capacity?: number): EventLog {
  const log = new EventLog(capacity);
  for (let i = 1; i <= count; i++) log.emit(changed(`f${i}.txt`));
  return log;
}

const idsOf = (events: { id: number | null }[]) => events.map((e) => e.id);

describe('EventLog', () => {
  it('is empty at first: lastId 0, firstId 1, nothing since 0', () => {
    const log = new EventLog();
    expect(log.lastId).toBe(0);
    expect(log.firstId).toBe(1);
    expect(log.since(0)).toEqual([]);
    expect(log.capacity).toBe(10_000);
  });

  it('numbers events from 1, in order, and stamps them with a time in epoch seconds', () => {
    const log = new EventLog();
    const before = Date.now() / 1000;
    const first = log.emit(changed('a.txt'));
    const second = log.emit({ type: 'transition', actor: 'entry:A', entry: 'A', from: 'stopped', to: 'active.starting', event: 'entry.start' });
    const third = log.emit(changed('b.txt'));
    expect([first.id, second.id, third.id]).toEqual([1, 2, 3]);
    expect(first).toEqual({ type: 'file', kind: 'changed', entry: 'A', path: 'a.txt', id: 1, time: expect.any(Number) });
    expect(second).toMatchObject({ type: 'transition', actor: 'entry:A', from: 'stopped', to: 'active.starting', id: 2 });
    expect(first.time).toBeGreaterThanOrEqual(before - 1);
    expect(third.time).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    expect(log.lastId).toBe(3);
    expect(log.firstId).toBe(1);
  });

  it('does not keep a reference to the event it was given', () => {
    const log = new EventLog();
    const event = changed('a.txt');
    log.emit(event);
    expect(event).not.toHaveProperty('id');
    (event as { path: string }).path = 'changed-after.txt';
    expect(log.since(0)[0]).toMatchObject({ path: 'a.txt' });
  });

  it('since(id) returns exactly the events after id, oldest first', () => {
    const log = filled(5);
    expect(idsOf(log.since(0))).toEqual([1, 2, 3, 4, 5]);
    expect(idsOf(log.since(1))).toEqual([2, 3, 4, 5]);
    expect(idsOf(log.since(2))).toEqual([3, 4, 5]);
    expect(idsOf(log.since(4))).toEqual([5]);
    expect(idsOf(log.since(5))).toEqual([]);
    expect(idsOf(log.since(99))).toEqual([]);
    expect(log.since(2).map((e) => (e as { path: string }).path)).toEqual(['f3.txt', 'f4.txt', 'f5.txt']);
  });

  it('since() returns a copy: changing it does not change the backlog', () => {
    const log = filled(3);
    const got = log.since(0);
    got.splice(0, 3);
    expect(idsOf(log.since(0))).toEqual([1, 2, 3]);
  });

  it('keeps a bounded backlog: the oldest events go, firstId moves, ids keep counting', () => {
    const log = filled(3, 3);
    expect(log.firstId).toBe(1);
    expect(idsOf(log.since(0))).toEqual([1, 2, 3]);
    log.emit(changed('f4.txt'));
    expect(log.firstId).toBe(2);
    expect(log.lastId).toBe(4);
    expect(idsOf(log.since(0))).toEqual([2, 3, 4]);
    for (let i = 5; i <= 10; i++) log.emit(changed(`f${i}.txt`));
    expect(log.firstId).toBe(8);
    expect(log.lastId).toBe(10);
    // Older than the backlog: what is left; inside it: exactly the later ones.
    expect(idsOf(log.since(0))).toEqual([8, 9, 10]);
    expect(idsOf(log.since(5))).toEqual([8, 9, 10]);
    expect(idsOf(log.since(7))).toEqual([8, 9, 10]);
    expect(idsOf(log.since(8))).toEqual([9, 10]);
    expect(idsOf(log.since(9))).toEqual([10]);
    expect(idsOf(log.since(10))).toEqual([]);
  });

  it('a backlog of one keeps only the newest event', () => {
    const log = filled(4, 1);
    expect(log.firstId).toBe(4);
    expect(idsOf(log.since(0))).toEqual([4]);
    expect(idsOf(log.since(3))).toEqual([4]);
    expect(idsOf(log.since(4))).toEqual([]);
  });

  it('a large backlog stays bounded at its capacity', () => {
    const log = filled(2500, 1000);
    expect(log.since(0)).toHaveLength(1000);
    expect(log.firstId).toBe(1501);
    expect(log.lastId).toBe(2500);
  });

  it('subscribe delivers each new event, as logged, to every listener until it unsubscribes', () => {
    const log = filled(2);
    const first = vi.fn<(e: LoggedEvent) => void>();
    const second = vi.fn<(e: LoggedEvent) => void>();
    const stopFirst = log.subscribe(first);
    log.subscribe(second);
    // Only new events: nothing from the backlog.
    expect(first).not.toHaveBeenCalled();
    const three = log.emit(changed('f3.txt'));
    expect(first).toHaveBeenCalledTimes(1);
    expect(first).toHaveBeenCalledWith(three);
    expect(first.mock.calls[0][0].id).toBe(3);
    stopFirst();
    log.emit(changed('f4.txt'));
    log.emit(changed('f5.txt'));
    expect(first).toHaveBeenCalledTimes(1);
    expect(second.mock.calls.map(([e]) => e.id)).toEqual([3, 4, 5]);
  });

  it('a listener sees the event already in the backlog (since covers it)', () => {
    const log = new EventLog();
    const seen: number[] = [];
    log.subscribe((e) => seen.push(log.since(e.id - 1)[0].id, log.lastId));
    log.emit(changed('a.txt'));
    expect(seen).toEqual([1, 1]);
  });
});

describe('GET /api/v1.0/events over a small backlog (in-process)', () => {
  let app: FastifyInstance;
  let events: EventLog;
  let base: string;
  let streams: SseStream[];

  beforeEach(async () => {
    events = filled(10, 3); // ids 1..10 emitted, 8..10 kept
    streams = [];
    app = Fastify();
    installErrorHandling(app);
    await app.register(observeRoutes, { prefix: '/api/v1.0', events } as never);
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterEach(async () => {
    for (const s of streams) await s.close();
    // fetch may keep a spare socket open after an abort: not the app's to wait for.
    app.server.closeAllConnections();
    await app.close();
  });

  const open = async (query = '', headers: Record<string, string> = {}) => {
    const s = await SseStream.open(`${base}/api/v1.0/events${query}`, headers);
    streams.push(s);
    return s;
  };

  /** Emits a new event and waits until the stream shows it: what came before it is all there is. */
  const settle = async (s: SseStream) => {
    const e = events.emit(changed('marker.txt'));
    await s.waitFor(`event ${e.id}`, (x) => x.id === e.id);
    return e.id;
  };

  const summary = (s: SseStream) => s.events.map((e: SseEvent) => (e.id === null ? e.event : e.id));

  it('answers an event stream: headers, retry, a comment with the last id', async () => {
    const s = await open('?since=9');
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(s.headers.get('cache-control')).toBe('no-cache');
    await settle(s);
    expect(s.retry).toBe(1000);
    expect(s.comments[0]).toBe('ferry events, last id 10');
  });

  it('?since inside the backlog: exactly the later events, then the live ones, no gap', async () => {
    const s = await open('?since=8');
    await settle(s);
    expect(summary(s)).toEqual([9, 10, 11]);
    // Each event: `id:` and `event:` agree with its data.
    for (const e of s.events) expect(e.data).toMatchObject({ id: e.id, type: e.event });
  });

  it('?since just before the backlog (firstId - 1) is no gap', async () => {
    const s = await open('?since=7');
    await settle(s);
    expect(summary(s)).toEqual([8, 9, 10, 11]);
  });

  it('?since older than the backlog: a gap event naming what is left, then the backlog', async () => {
    const s = await open('?since=2');
    await settle(s);
    expect(summary(s)).toEqual(['gap', 8, 9, 10, 11]);
    expect(s.events[0].data).toEqual({ since: 2, firstId: 8 });
    expect(s.events[0].id).toBeNull();
  });

  it('?since=0 after the backlog dropped events: a gap too', async () => {
    const s = await open('?since=0');
    await settle(s);
    expect(summary(s)).toEqual(['gap', 8, 9, 10, 11]);
  });

  it('no since and no Last-Event-ID: live events only', async () => {
    const s = await open();
    await settle(s);
    expect(summary(s)).toEqual([11]);
  });

  it('Last-Event-ID resumes like ?since', async () => {
    const s = await open('', { 'last-event-id': '9' });
    await settle(s);
    expect(summary(s)).toEqual([10, 11]);
    // The backlog now holds 9..11.
    const old = await open('', { 'last-event-id': '1' });
    events.emit(changed('x.txt'));
    await old.waitFor('event 12', (e) => e.id === 12);
    expect(summary(old)).toEqual(['gap', 9, 10, 11, 12]);
    expect(old.events[0].data).toEqual({ since: 1, firstId: 9 });
  });

  it("an EventSource's reconnection (its first URL's ?since plus Last-Event-ID) resumes after Last-Event-ID: no duplicates", async () => {
    // EventSource reconnects to the URL it was opened with, adding the id it saw last.
    const s = await open('?since=8', { 'last-event-id': '10' });
    await settle(s);
    expect(summary(s)).toEqual([11]);
  });

  it('an id newer than any (from an earlier run of the daemon): a gap, then the whole backlog', async () => {
    // The daemon restarted: ids count from 1 again, and the client's last id is from before.
    const s = await open('?since=500');
    await settle(s);
    expect(summary(s)).toEqual(['gap', 8, 9, 10, 11]);
    expect(s.events[0].data).toEqual({ since: 500, firstId: 8 });
  });

  it('refuses a bad since or Last-Event-ID with 400 in the error format', async () => {
    for (const [query, headers] of [
      ['?since=abc', {}],
      ['?since=-1', {}],
      ['?since=1.5', {}],
      ['', { 'last-event-id': 'abc' }],
      ['', { 'last-event-id': '-3' }],
    ] as [string, Record<string, string>][]) {
      const res = await fetch(`${base}/api/v1.0/events${query}`, { headers });
      expect(res.status, `${query} ${JSON.stringify(headers)}`).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await res.json()) as { reason: string; status: string };
      expect(body).toEqual({ reason: expect.any(String), status: 'error' });
      expect(body.reason).toMatch(/since|Last-Event-ID/);
    }
  });

  it('a client that goes away is unsubscribed: nothing is left listening', async () => {
    const listeners = () => (events as unknown as { listeners: Set<unknown> }).listeners.size;
    const clients = await Promise.all([open('?since=10'), open(), open('', { 'last-event-id': '9' })]);
    await until('three listeners', () => listeners() === 3);
    for (const c of clients) await c.close();
    await until('no listener', () => listeners() === 0);
    // And the log goes on without them.
    events.emit(changed('after.txt'));
    expect(events.lastId).toBe(11);
  });

  it('closing the app ends open streams', async () => {
    const s = await open('?since=10');
    await settle(s);
    await app.close();
    await s.closed();
    expect(s.ended).toBe(true);
  });
});
