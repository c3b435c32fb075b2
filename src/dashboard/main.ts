/**
 * The dashboard's composition root: the API, the connection, the model and the panels, and
 * when each part is read again. Every read waits while the daemon is out of reach; the
 * connection alone tries again, backing off.
 */
import { toMermaid } from '../observe/mermaid.js';
import { Api, type LoggedEvent } from './api.js';
import { Connection, type Reconnection } from './connection.js';
import { $ } from './dom.js';
import { clock, duration } from './format.js';
import { Model } from './model.js';
import { debounce, throttle } from './schedule.js';
import { DebugPanel } from './panels/debug.js';
import { EventsPanel } from './panels/events.js';
import { FilesPanel, type FilesView } from './panels/files.js';
import { Overview, type Control } from './panels/overview.js';
import { RulesPanel } from './panels/rules.js';
import { TransfersPanel } from './panels/transfers.js';

const api = new Api();
const model = new Model(api);
const events = new EventsPanel();
const transfers = new TransfersPanel();
const files = new FilesPanel(api, model);
const overview = new Overview({
  control: (name, c) => void control(name, c),
  showList: (name, list) => {
    files.show(list === 'pending' ? { kind: 'pending', entry: name } : { kind: 'failing' });
    $('files-section').scrollIntoView({ block: 'start' });
  },
  details: (name) => {
    debug.reveal(name);
  },
});
const rules = new RulesPanel(api, () => {
  filesSoon();
  machinesSoon();
  countsSoon();
});
const debug = new DebugPanel(api, model, () => {
  loadMermaid();
  render();
  void debug.refreshStats();
});

const connection = new Connection(api, {
  live: (info) => void onLive(info),
  down: (since, reason) => {
    events.note('daemon', `lost the daemon: ${reason}`);
    files.stale(true, since);
    render();
  },
  event: onEvent,
  gap: (info) => {
    events.note(
      'gap',
      info.since >= info.firstId - 1
        ? 'the daemon numbers its events from 1 again: it restarted'
        : `missed events ${info.since + 1}–${info.firstId - 1}: the daemon no longer keeps them`,
    );
  },
  changed: showConnection,
});

// ---- drawing ---------------------------------------------------------------------------------

/** Draws every panel from the model: at most once per 50 ms however many events arrive. */
let renderTimer: ReturnType<typeof setTimeout> | null = null;
function render(): void {
  if (renderTimer !== null) return;
  renderTimer = setTimeout(() => {
    renderTimer = null;
    const live = connection.live;
    overview.render(model, live);
    files.renderTabs();
    transfers.render(model.transfers, live, connection.downSince);
    debug.render(live);
    const r = model.actors.get('rules');
    rules.ready(live && r?.path[0] === 'ready');
    if (r?.context) rules.counts(Number(r.context.staged), Number(r.context.active));
  }, 50);
}

function showConnection(): void {
  const badge = $('connection');
  const { state, retryAt } = connection;
  badge.classList.toggle('live', state === 'live');
  badge.classList.toggle('down', state !== 'live');
  if (state === 'live') badge.textContent = 'live';
  else if (connection.downSince === null) badge.textContent = 'connecting…';
  else if (state === 'connecting' || retryAt === null) badge.textContent = 'unreachable · trying…';
  else badge.textContent = `unreachable · retry in ${Math.max(0, Math.ceil((retryAt - Date.now()) / 1000))} s`;
  badge.title = connection.downSince === null ? '' : `the daemon has been unreachable since ${clock(connection.downSince / 1000)}; click to try now`;
}
$('connection').addEventListener('click', () => {
  connection.retryNow();
});
setInterval(() => {
  if (connection.state === 'down') showConnection();
}, 1000);

let mermaidLoading = false;
/** mermaid (3.5 MB) is loaded the first time Debug opens: the overview does not need it. */
function loadMermaid(): void {
  if (mermaidLoading) return;
  mermaidLoading = true;
  const script = document.createElement('script');
  script.src = 'assets/mermaid.min.js';
  script.addEventListener('load', render);
  document.head.append(script);
}

// ---- reading ---------------------------------------------------------------------------------

/** A read that runs only while the daemon is reachable, then redraws. */
function task(read: () => Promise<unknown>): () => Promise<void> {
  return async () => {
    if (!connection.live) return;
    await read();
    render();
  };
}

const readMachines = task(() => model.readMachines());
const readCounts = task(async () => {
  if (await model.readCounts()) pickFirstView();
});
const readHoldings = task(() => model.readHoldings());
const readTransfers = task(() => model.readTransfers());
const readConflicts = task(async () => {
  await model.readConflicts();
  if (files.view.kind === 'conflicts') await files.refresh();
});
const readFiles = task(() => files.refresh());
const readStats = task(() => debug.refreshStats());

const machinesSoon = throttle(readMachines, 250);
// At most every second, less often while counting takes long (thousands of files waiting).
const countsSoon = throttle(readCounts, () => Math.max(1000, 5 * model.countsCost));
// The whole listing is walked at most every second, and less often the longer a walk takes.
const holdingsSoon = throttle(readHoldings, () => Math.max(1000, 5 * model.holdingsCost));
const transfersSoon = throttle(readTransfers, 250);
const conflictsSoon = throttle(readConflicts, 2000);
const filesSoon = debounce(() => void readFiles(), 300);
const diffSoon = debounce(() => void (connection.live && rules.refreshDiff()), 300);
const statsSoon = debounce(() => void readStats(), 200);

/** Until someone picks a list, the page opens on what needs attention. */
let picked = false;
function pickFirstView(): void {
  if (picked || files.chosen) return;
  picked = true;
  const waiting = model.entries.find((e) => (model.pending.get(e.name)?.files ?? 0) > 0);
  const view: FilesView = model.failingAll?.files ? { kind: 'failing' } : waiting ? { kind: 'pending', entry: waiting.name } : { kind: 'all' };
  files.show(view, false);
}

/** Everything, again: on load and after every reconnection. */
async function resync(): Promise<void> {
  if (await model.readEntries()) {
    overview.build(model.entries);
    debug.build(model.entries);
  }
  render();
  await Promise.all([
    readMachines().then(readStats),
    readCounts(),
    readTransfers(),
    readConflicts(),
    readFiles(),
    rules.refreshRules(false),
    rules.refreshDiff(),
    readHoldings(),
  ]);
}

async function onLive(info: Reconnection): Promise<void> {
  if (info.restarted) {
    const at = info.startTime ? ` at ${clock(info.startTime)}` : '';
    events.note('daemon', `the daemon restarted${at}: its events follow`);
    model.forgetStates();
  } else if (!info.first) {
    events.note('daemon', `back after ${duration(info.downFor)}: the same daemon, the events it sent meanwhile follow`);
  }
  overview.clearStale();
  rules.clearStale();
  files.stale(false);
  events.placeholder('No events yet.');
  await resync();
}

function onEvent(e: LoggedEvent): void {
  events.add(e);
  if (e.type === 'transition') {
    model.transition(e.actor, e.to);
    render();
    if (e.entry) {
      countsSoon();
      transfersSoon();
      statsSoon();
    }
    if (e.actor === 'rules') {
      filesSoon();
      diffSoon();
      machinesSoon();
    }
  } else if (e.type === 'file') {
    filesSoon();
    diffSoon();
    countsSoon();
    holdingsSoon();
    transfersSoon();
    conflictsSoon();
  } else if (e.type === 'progress') {
    transfers.progress(e);
    transfersSoon();
  } else {
    // An actor failed and the daemon started it again: read every state.
    machinesSoon();
    countsSoon();
  }
}

async function control(name: string, c: Control): Promise<void> {
  overview.busy(name, true);
  overview.message(name, 'muted', `${c}…`);
  render();
  const r = await api.call('PUT', `/entries/${encodeURIComponent(name)}/${c}`);
  if (r.ok) {
    overview.message(name, 'ok', `${c}: done`);
    // The row itself now says what the entry does: the note goes once read.
    setTimeout(() => {
      overview.clearDone(name, c);
    }, 5000);
  }
  else overview.message(name, 'error', r.reason, r.status === 0 ? 'unreachable' : undefined);
  overview.busy(name, false);
  render();
  await readMachines();
  countsSoon();
  statsSoon();
}

// ---- polling while live ----------------------------------------------------------------------

/** A poll, skipped while the page is hidden (the event stream still tells of changes). */
const every = (ms: number, fn: () => unknown) =>
  setInterval(() => {
    if (!document.hidden) void fn();
  }, ms);
document.addEventListener('visibilitychange', () => {
  if (document.hidden) return;
  machinesSoon();
  countsSoon();
  transfersSoon();
});
every(2000, transfersSoon);
every(3000, statsSoon);
every(5000, machinesSoon);
every(5000, countsSoon);
every(10_000, filesSoon);
every(30_000, holdingsSoon);
every(30_000, conflictsSoon);

$('subtitle').textContent = location.host;
connection.start();

// For tests and the curious: the drawing the page makes, with the server's own function.
(window as unknown as { ferryDashboard: unknown }).ferryDashboard = { toMermaid, machines: () => model.machines };
