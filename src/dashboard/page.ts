/**
 * The dashboard: one self-contained page (HTML, CSS and a plain script), served at `/`.
 *
 * It loads nothing but this page, `assets/mermaid.min.js` (served from our own dependencies)
 * and the API under `api/v1.0/` (paths relative to the page, so it also works behind a prefix).
 * Live updates come from the event stream (`api/v1.0/events`, Server-Sent Events; the browser
 * reconnects with Last-Event-ID by itself), with light polling for stats and transfers.
 *
 * The text is a `String.raw` template: backslashes reach the browser as written. It must hold
 * no backtick and no dollar-brace; the script builds strings with `+` only.
 *
 * Stable hooks for tests (data-testid): `entry-NAME`, `entry-NAME-state` (plain state text such
 * as `active.running` or `stopped`), `entry-NAME-start|stop|restart`, `entry-NAME-message`,
 * `entry-NAME-diagram` (with `data-state` once the drawing shows that state),
 * `entry-NAME-stats`, `rules-state`, `rules-diagram`, `rules-text`, `rules-stage`,
 * `rules-revert`, `rules-reload`, `rules-message`, `rules-diff`, `files-table`,
 * `file-row-FILENAME`, `files-prev`, `files-next`, `files-range`, `transfers`, `event-log`,
 * `connection`.
 */
export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ferry</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%23234'/%3E%3Cpath d='M3 10h10l-2 3H5z' fill='%23ffd866'/%3E%3C/svg%3E">
<style>
  :root {
    --bg: #f3f5f8; --card: #fff; --ink: #1d2430; --muted: #637083; --line: #dfe4ea;
    --accent: #2f6fdf; --ok: #1d8a4e; --warn: #b7791f; --bad: #c53030; --hl: #ffd866;
    --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--ink);
         font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  header { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: #1f2a3a; color: #fff; }
  header h1 { margin: 0; font-size: 20px; letter-spacing: .5px; }
  header .sub { color: #b8c3d3; font-size: 13px; }
  header .spacer { flex: 1; }
  main { padding: 20px 24px 32px; display: grid; gap: 20px; max-width: 1400px; margin: 0 auto; }
  section > h2 { margin: 0 0 10px; font-size: 16px; text-transform: uppercase; letter-spacing: .8px; color: var(--muted); }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px;
          box-shadow: 0 1px 2px rgba(20, 30, 50, .05); }
  .grid2 { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 20px; align-items: start; }
  .stack { display: grid; gap: 14px; }
  .muted { color: var(--muted); }
  .mono { font-family: var(--mono); font-size: 12.5px; }
  .badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font: 600 12.5px/1.6 var(--mono);
           background: #e8ecf2; color: var(--ink); white-space: nowrap; }
  .badge.active { background: #dcf3e5; color: var(--ok); }
  .badge.stopped { background: #f1e3e3; color: var(--bad); }
  .badge.restarting, .badge.reloading { background: #fdf0d5; color: var(--warn); }
  .badge.ready { background: #dcf3e5; color: var(--ok); }
  .conn.live { background: #2b7a4b; color: #fff; }
  .conn.down { background: #a33; color: #fff; }
  button { font: inherit; font-weight: 600; padding: 5px 14px; border-radius: 6px; border: 1px solid #c5cdd8;
           background: #fff; color: var(--ink); cursor: pointer; }
  button:hover:not(:disabled) { background: #eef3fb; border-color: var(--accent); }
  button:disabled { opacity: .5; cursor: default; }
  button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
  button.primary:hover:not(:disabled) { background: #255bc0; }
  .buttons { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
  .message { min-height: 1.45em; font-size: 13px; }
  .message.error { color: var(--bad); }
  .message.ok { color: var(--ok); }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .5px; color: var(--muted); font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  tbody tr:hover { background: #f7f9fc; }
  .empty { color: var(--muted); font-style: italic; padding: 10px 8px; }

  /* Entries: the statechart on the left, state, controls and stats on the right. */
  .entries { display: grid; gap: 16px; }
  .entry { display: grid; grid-template-columns: minmax(0, 1fr) 330px; gap: 18px; }
  .entry .side { display: grid; gap: 10px; align-content: start; border-left: 1px solid var(--line); padding-left: 18px; }
  .entry h3 { margin: 0; font-size: 18px; display: flex; align-items: center; gap: 10px; }
  .kv { display: grid; grid-template-columns: auto 1fr; gap: 2px 14px; margin: 0; }
  .kv dt { color: var(--muted); }
  .kv dd { margin: 0; font-family: var(--mono); font-size: 12.5px; text-align: right; }
  .diagram { min-height: 120px; display: flex; align-items: center; justify-content: center; overflow-x: auto; }
  .diagram svg { max-width: 100%; height: auto; }
  .diagram .err { color: var(--bad); font-family: var(--mono); white-space: pre-wrap; }

  /* Files */
  .owner { display: inline-block; margin: 0 4px 2px 0; padding: 0 7px; border-radius: 4px; font: 12.5px/1.6 var(--mono); }
  .owner.fresh { background: #dcf3e5; color: var(--ok); }
  .owner.stale { background: #fdf0d5; color: var(--warn); }
  .pager { display: flex; gap: 10px; align-items: center; justify-content: flex-end; margin-top: 10px; }
  td.filename { font-family: var(--mono); font-size: 12.5px; word-break: break-all; }
  #files td { vertical-align: middle; }

  /* Transfers */
  .xfer-entry + .xfer-entry { border-top: 1px solid var(--line); margin-top: 10px; padding-top: 10px; }
  .xfer-head { display: flex; gap: 12px; align-items: baseline; }
  .xfer-head strong { font-size: 15px; }
  .job { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 2px 10px; margin-top: 8px; }
  .job .name { font-family: var(--mono); font-size: 12.5px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .job .figures { font-size: 12.5px; color: var(--muted); text-align: right; white-space: nowrap; }
  .bar { grid-column: 1 / -1; height: 8px; background: #e6ebf1; border-radius: 4px; overflow: hidden; }
  .bar > div { height: 100%; background: linear-gradient(90deg, #3d7fe8, #5aa1f0); width: 0; transition: width .3s; }
  .waiting { margin: 6px 0 0; padding-left: 18px; font-size: 12.5px; color: var(--muted); }

  /* Rules */
  textarea { width: 100%; min-height: 230px; font: 12.5px/1.5 var(--mono); padding: 8px 10px; border: 1px solid #c5cdd8;
             border-radius: 6px; resize: vertical; color: var(--ink); background: #fbfcfe; }
  textarea.dirty { border-color: var(--warn); background: #fffdf6; }
  .gain { color: var(--ok); font-family: var(--mono); }
  .lose { color: var(--bad); font-family: var(--mono); }

  /* Event log */
  .log { list-style: none; margin: 0; padding: 0; max-height: 340px; overflow-y: auto; font: 12.5px/1.5 var(--mono); }
  .log li { display: grid; grid-template-columns: 64px 78px minmax(0, 1fr); gap: 8px; padding: 3px 2px; border-bottom: 1px solid #eef1f5; }
  .log .t { color: var(--muted); }
  .log .k { font-weight: 600; }
  .log .k.transition { color: #6b46c1; }
  .log .k.file { color: var(--ok); }
  .log .k.progress { color: var(--accent); }
  .log .k.gap { color: var(--bad); }
  .log .d { overflow-wrap: anywhere; }
  @media (max-width: 1000px) { .grid2, .entry { grid-template-columns: minmax(0, 1fr); } .entry .side { border-left: 0; padding-left: 0; } }
</style>
</head>
<body>
<header>
  <h1>Ferry</h1>
  <span class="sub" id="subtitle">file sync dashboard</span>
  <span class="spacer"></span>
  <span class="badge conn down" id="connection" data-testid="connection">connecting…</span>
</header>
<main>
  <section>
    <h2>Entries</h2>
    <div class="entries">
      <div class="entries" id="entries" data-testid="entries"><div class="card muted">Loading…</div></div>
      <div class="card entry" data-testid="rules-actor">
        <div class="diagram" id="rules-diagram" data-testid="rules-diagram"></div>
        <div class="side">
          <h3>rules <span class="badge" id="rules-state" data-testid="rules-state">…</span></h3>
          <div class="muted">The rules actor: holds the staged and active rules, and turns every change into jobs for the entries.</div>
          <dl class="kv" id="rules-context" data-testid="rules-context"></dl>
        </div>
      </div>
    </div>
  </section>

  <div class="grid2">
    <section>
      <h2>Files</h2>
      <div class="card">
        <table data-testid="files-table">
          <thead><tr><th>File</th><th class="num">Size</th><th>Owners (✓ up to date, … pending)</th></tr></thead>
          <tbody id="files"></tbody>
        </table>
        <div class="pager">
          <span class="muted" id="files-range" data-testid="files-range"></span>
          <button id="files-prev" data-testid="files-prev">‹ Prev</button>
          <button id="files-next" data-testid="files-next">Next ›</button>
        </div>
      </div>
    </section>
    <div class="stack">
      <section>
        <h2>Transfers</h2>
        <div class="card" id="transfers" data-testid="transfers"><div class="empty">Loading…</div></div>
      </section>
      <section>
        <h2>Events</h2>
        <div class="card"><ul class="log" id="log" data-testid="event-log"><li class="placeholder"><span></span><span></span><span class="muted">Waiting for events…</span></li></ul></div>
      </section>
    </div>
  </div>

  <section>
    <h2>Rules</h2>
    <div class="grid2">
      <div class="card stack">
        <div>
          <strong>Staged rules</strong>
          <span class="muted" id="rules-counts"></span>
        </div>
        <textarea id="rules-text" data-testid="rules-text" spellcheck="false" aria-label="staged rules (JSON)"></textarea>
        <div class="buttons">
          <button id="rules-stage" data-testid="rules-stage">Stage</button>
          <button id="rules-revert" data-testid="rules-revert">Revert edits</button>
          <button id="rules-reload" class="primary" data-testid="rules-reload">Reload (apply staged rules)</button>
        </div>
        <div class="message" id="rules-message" data-testid="rules-message"></div>
      </div>
      <div class="card">
        <strong>What a reload would change</strong>
        <table data-testid="rules-diff">
          <thead><tr><th>File</th><th>Gains</th><th>Loses</th></tr></thead>
          <tbody id="rules-diff"></tbody>
        </table>
      </div>
    </div>
  </section>
</main>

<script src="assets/mermaid.min.js"></script>
<script>
(function () {
  'use strict';
  var API = 'api/v1.0';
  var PAGE = 50;

  // ---- small helpers -------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'text') node.textContent = v;
        else if (k === 'class') node.className = v;
        else if (k.slice(0, 2) === 'on') node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  /** One API call: resolves to {status, body}, status 0 when the daemon is unreachable; never rejects. */
  // A daemon started with --token wants it on every call: from ?token= once, then remembered.
  var TOKEN = new URLSearchParams(location.search).get('token') || localStorage.getItem('ferry.token') || '';
  if (new URLSearchParams(location.search).get('token')) localStorage.setItem('ferry.token', TOKEN);
  var askedToken = false;
  function askToken() {
    if (askedToken) return;
    askedToken = true;
    var given = window.prompt('This Ferry daemon needs its API token:');
    if (given) { localStorage.setItem('ferry.token', given); location.reload(); }
  }

  function call(method, route, body) {
    var init = { method: method, headers: { accept: 'application/json' } };
    if (TOKEN) init.headers.authorization = 'Bearer ' + TOKEN;
    if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    return fetch(API + route, init).then(function (res) {
      if (res.status === 401) askToken();
      return res.text().then(function (text) {
        var json = null;
        try { json = text ? JSON.parse(text) : null; } catch (e) { json = { reason: text }; }
        return { status: res.status, body: json };
      });
    }).catch(function (err) {
      return { status: 0, body: { reason: 'the daemon is unreachable (' + (err && err.message || err) + ')' } };
    });
  }
  function reasonOf(r) {
    return (r.body && r.body.reason) ? r.body.reason : ('HTTP ' + r.status);
  }

  function bytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    var units = ['B', 'KB', 'MB', 'GB', 'TB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + (sec < 10 ? '0' : '') + sec + 's';
    return sec + 's';
  }
  function clock(epochSeconds) {
    var d = epochSeconds ? new Date(epochSeconds * 1000) : new Date();
    return d.toTimeString().slice(0, 8);
  }
  function debounce(fn, ms) {
    var timer = null;
    return function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }
  /** Runs fn at most once per ms (the last call is never lost), and never twice at once. */
  function throttle(fn, ms) {
    var timer = null, running = false, again = false;
    function run() {
      timer = null;
      if (running) { again = true; return; }
      running = true;
      Promise.resolve().then(fn).catch(function (e) { console.warn('ferry dashboard:', e); }).then(function () {
        running = false;
        if (again) { again = false; schedule(); }
      });
    }
    function schedule() { if (!timer) timer = setTimeout(run, ms); }
    return schedule;
  }

  // ---- statecharts: the port of src/observe/mermaid.ts toMermaid --------------------------
  var idOf = function (node) { return node.id.replace(/[^A-Za-z0-9_]/g, '_'); };
  var label = function (text) { return String(text).replace(/[:;#"\[\]{}]/g, ' ').replace(/\s+/g, ' ').trim(); };
  function initialKey(node) {
    var initial = node.initial;
    if (typeof initial === 'string') return initial;
    var target = initial && initial.target && initial.target[0];
    return target ? String(target).split('.').pop() : undefined;
  }
  function eventLabel(type) {
    var after = /^xstate\.after\.([^.]+)\./.exec(type);
    if (after) return 'after ' + after[1];
    if (type.indexOf('xstate.done.actor') === 0) return 'done';
    if (type.indexOf('xstate.error.actor') === 0) return 'error';
    return type;
  }
  /**
   * A machine definition (toJSON) as a mermaid stateDiagram-v2, with the states on 'current'
   * (a path like ['active', 'running']) marked: the innermost with class 'current', the
   * states around it with class 'currentParent'.
   */
  function toMermaid(machine, current, direction) {
    var lines = ['stateDiagram-v2', '  direction ' + (direction || 'LR')];
    var byId = {};
    (function walk(node) {
      byId['#' + node.id] = node;
      Object.keys(node.states || {}).forEach(function (k) { walk(node.states[k]); });
    })(machine);
    (function declare(node, indent) {
      var initial = initialKey(node);
      Object.keys(node.states || {}).forEach(function (k) {
        var child = node.states[k];
        var id = idOf(child);
        if (child.states && Object.keys(child.states).length > 0) {
          lines.push(indent + 'state "' + label(child.key) + '" as ' + id + ' {');
          declare(child, indent + '  ');
          lines.push(indent + '}');
        } else {
          lines.push(indent + id + ' : ' + label(child.key));
        }
        if (child.key === initial) lines.push(indent + '[*] --> ' + id);
      });
    })(machine, '  ');
    (function edges(node) {
      if (node !== machine) {
        (node.transitions || []).forEach(function (t) {
          var targets = t.target && t.target.length ? t.target : (t.reenter ? ['#' + node.id] : []);
          targets.forEach(function (target) {
            var to = byId[target];
            if (!to) return;
            var guard = t.guard ? (typeof t.guard === 'string' ? t.guard : t.guard.type) : '';
            lines.push('  ' + idOf(node) + ' --> ' + idOf(to) + ' : ' + label(eventLabel(t.eventType) + (guard ? ' (if ' + guard + ')' : '')));
          });
        });
      }
      Object.keys(node.states || {}).forEach(function (k) { edges(node.states[k]); });
    })(machine);
    if (current && current.length) {
      lines.push('  classDef current fill:#ffd866,stroke:#b8860b,stroke-width:3px,color:#000');
      lines.push('  classDef currentParent fill:#fff8e1,stroke:#b8860b,stroke-width:2px');
      var node = machine;
      for (var i = 0; i < current.length; i++) {
        node = node && node.states ? node.states[current[i]] : undefined;
        if (!node) break;
        lines.push('  class ' + idOf(node) + (i === current.length - 1 ? ' current' : ' currentParent'));
      }
    }
    return lines.join('\n') + '\n';
  }

  var mermaidReady = false;
  if (window.mermaid) {
    window.mermaid.initialize({
      startOnLoad: false,
      securityLevel: 'strict',
      theme: 'neutral',
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
      state: { nodeSpacing: 60, rankSpacing: 40, useMaxWidth: true },
    });
    mermaidReady = true;
  }
  var renderSeq = 0;
  /** Draws 'machine' at 'path' into 'box'; a later call for the same box wins. */
  function draw(box, machine, path, direction) {
    var stateText = path.join('.');
    // The latest state asked for wins, even over a drawing still being made for another.
    if (box.getAttribute('data-target') === stateText) return;
    box.setAttribute('data-target', stateText);
    var mine = String(++renderSeq);
    box.setAttribute('data-pending', mine);
    if (!mermaidReady) {
      clear(box).appendChild(el('div', { class: 'err', text: 'mermaid did not load' }));
      return;
    }
    var id = 'mmd' + mine;
    window.mermaid.render(id, toMermaid(machine, path, direction)).then(function (out) {
      if (box.getAttribute('data-pending') !== mine) return;
      box.innerHTML = out.svg;
      box.setAttribute('data-state', stateText);
    }, function (err) {
      var leftover = document.getElementById('d' + id);
      if (leftover) leftover.remove();
      if (box.getAttribute('data-pending') !== mine) return;
      box.removeAttribute('data-target'); // try again on the next refresh
      clear(box).appendChild(el('div', { class: 'err', text: 'cannot draw: ' + (err && err.message || err) }));
    });
  }

  // ---- state -------------------------------------------------------------------------------
  var machines = null;            // {entry, rules}: definitions
  var entries = [];               // [{name, driver, options}]
  var actors = {};                // id -> {path, context}
  var seen = {};                  // id -> number of transition events received
  var cards = {};                 // entry name -> {state, diagram, stats, message, buttons, context}
  var filesOffset = 0;
  var logItems = [];

  // ---- entries -----------------------------------------------------------------------------
  function buildEntries() {
    var box = clear($('entries'));
    if (!entries.length) { box.appendChild(el('div', { class: 'card empty', text: 'No entries configured.' })); return; }
    entries.forEach(function (entry) {
      var name = entry.name;
      var t = 'entry-' + name;
      var c = {};
      c.state = el('span', { class: 'badge', 'data-testid': t + '-state', text: '…' });
      c.diagram = el('div', { class: 'diagram', 'data-testid': t + '-diagram' });
      c.message = el('div', { class: 'message', 'data-testid': t + '-message' });
      c.stats = el('dl', { class: 'kv', 'data-testid': t + '-stats' });
      c.context = el('dl', { class: 'kv', 'data-testid': t + '-context' });
      c.buttons = ['start', 'stop', 'restart'].map(function (control) {
        return el('button', {
          'data-testid': t + '-' + control,
          text: control.charAt(0).toUpperCase() + control.slice(1),
          onclick: function () { control_(name, control); },
        });
      });
      var root = entry.options && entry.options.root;
      cards[name] = c;
      box.appendChild(el('div', { class: 'card entry', 'data-testid': t }, [
        c.diagram,
        el('div', { class: 'side' }, [
          el('h3', null, [name, c.state]),
          el('div', { class: 'muted mono', text: entry.driver + (root ? ' · ' + root : '') }),
          el('div', { class: 'buttons' }, c.buttons),
          c.message,
          el('strong', { text: 'Worker process' }),
          c.stats,
          el('strong', { text: 'Actor' }),
          c.context,
        ]),
      ]));
      showStats(name, null);
    });
  }

  function kv(dl, pairs) {
    clear(dl);
    pairs.forEach(function (p) {
      dl.appendChild(el('dt', { text: p[0] }));
      dl.appendChild(el('dd', { text: p[1] }));
    });
  }

  function showStats(name, info) {
    var c = cards[name];
    if (!c) return;
    if (!info) {
      clear(c.stats).appendChild(el('dd', { class: 'muted', style: 'text-align:left;font-family:inherit', text: 'not running' }));
      return;
    }
    kv(c.stats, [
      ['pid', String(info.pid)],
      ['cpu', info.cpu.toFixed(1) + ' %'],
      ['cpu time', info.ctime],
      ['mem', info.mem.toFixed(1) + ' %'],
      ['rss (mem_info1)', info.mem_info1],
      ['vms (mem_info2)', info.mem_info2],
      ['age', duration(info.age)],
    ]);
  }

  function isRunning(name) {
    var a = actors['entry:' + name];
    return !!a && a.path[0] === 'active' && a.path[1] === 'running';
  }

  function refreshStats() {
    return Promise.all(entries.map(function (entry) {
      if (!isRunning(entry.name)) { showStats(entry.name, null); return null; }
      return call('GET', '/entries/' + encodeURIComponent(entry.name) + '/stats').then(function (r) {
        showStats(entry.name, r.status === 200 ? r.body.info : null);
      });
    }));
  }

  function showActor(id) {
    var a = actors[id];
    if (!a || !machines) return;
    var text = a.path.join('.');
    if (id === 'rules') {
      var s = $('rules-state');
      s.textContent = text;
      s.className = 'badge ' + a.path[0];
      draw($('rules-diagram'), machines.rules, a.path);
      var ctx = a.context || {};
      if (ctx.staged !== undefined) {
        $('rules-counts').textContent = '· ' + ctx.staged + ' staged, ' + ctx.active + ' active';
        kv($('rules-context'), [
          ['staged rules', String(ctx.staged)],
          ['active rules', String(ctx.active)],
          ['last error', ctx.lastError || '–'],
        ]);
      }
      $('rules-reload').disabled = a.path[0] !== 'ready';
      return;
    }
    var name = id.slice('entry:'.length);
    var c = cards[name];
    if (!c) return;
    c.state.textContent = text;
    c.state.className = 'badge ' + a.path[0];
    draw(c.diagram, machines.entry, a.path);
    if (a.context) {
      var x = a.context;
      kv(c.context, [
        ['queued jobs', String(x.queue)],
        ['restarts', String(x.restarts)],
        ['failures', String(x.failures)],
        ['folders watched', x.watch ? x.watch.watched + ' of ' + x.watch.folders : '–'],
        ['folders polled', x.watch ? String(x.watch.polled) + (x.watch.polled ? ' (no inotify watch left: rescanned at an interval)' : '') : '–'],
        ['last error', x.lastError || '–'],
      ]);
    }
  }

  function control_(name, control) {
    var c = cards[name];
    c.buttons.forEach(function (b) { b.disabled = true; });
    c.message.className = 'message muted';
    c.message.textContent = control + '…';
    call('PUT', '/entries/' + encodeURIComponent(name) + '/' + control).then(function (r) {
      if (r.status === 200) { c.message.className = 'message ok'; c.message.textContent = control + ': done'; }
      else { c.message.className = 'message error'; c.message.textContent = reasonOf(r); }
    }, function (err) {
      c.message.className = 'message error';
      c.message.textContent = 'request failed: ' + err;
    }).then(function () {
      c.buttons.forEach(function (b) { b.disabled = false; });
      return refreshMachines();
    }).then(refreshStats);
  }

  /** Actor states and contexts; a transition event received meanwhile is newer and wins. */
  function refreshMachines() {
    var before = {};
    Object.keys(seen).forEach(function (k) { before[k] = seen[k]; });
    return call('GET', '/debug/machines').then(function (r) {
      if (r.status !== 200) return;
      machines = r.body.machines;
      r.body.actors.forEach(function (a) {
        var old = actors[a.id];
        var keepPath = old && (seen[a.id] || 0) !== (before[a.id] || 0);
        actors[a.id] = { path: keepPath ? old.path : a.path, context: a.context };
        showActor(a.id);
      });
    });
  }

  // ---- files -------------------------------------------------------------------------------
  function refreshFiles() {
    var offset = filesOffset;
    return call('GET', '/files?offset=' + offset + '&limit=' + (PAGE + 1)).then(function (r) {
      if (r.status !== 200 || offset !== filesOffset) return;
      var files = r.body.files;
      if (files.length === 0 && offset > 0) {
        filesOffset = Math.max(0, offset - PAGE);
        return refreshFiles();
      }
      var more = files.length > PAGE;
      files = files.slice(0, PAGE);
      var body = clear($('files'));
      if (!files.length) body.appendChild(el('tr', null, [el('td', { class: 'empty', colspan: 3, text: 'No files yet.' })]));
      files.forEach(function (f) {
        var owners = el('td');
        f.owners.forEach(function (o) {
          var fresh = f.uptodate.indexOf(o) >= 0;
          owners.appendChild(el('span', {
            class: 'owner ' + (fresh ? 'fresh' : 'stale'),
            title: o + (fresh ? ' holds the latest version' : ' is waiting for the latest version'),
            text: o + ' ' + (fresh ? '✓' : '…'),
          }));
        });
        if (!f.owners.length) owners.appendChild(el('span', { class: 'muted', text: 'none' }));
        body.appendChild(el('tr', { 'data-testid': 'file-row-' + f.filename, title: f.fid }, [
          el('td', { class: 'filename', text: f.filename }),
          el('td', { class: 'num', text: bytes(f.size) }),
          owners,
        ]));
      });
      $('files-range').textContent = files.length ? 'files ' + (offset + 1) + '–' + (offset + files.length) : '';
      $('files-prev').disabled = offset === 0;
      $('files-next').disabled = !more;
    });
  }
  $('files-prev').addEventListener('click', function () { filesOffset = Math.max(0, filesOffset - PAGE); refreshFiles(); });
  $('files-next').addEventListener('click', function () { filesOffset += PAGE; refreshFiles(); });

  // ---- transfers ---------------------------------------------------------------------------
  var jobBars = {};   // entry + '/' + job id -> {bar, figures, size}
  function figures(bytesDone, size, rate) {
    var pct = size > 0 ? Math.min(100, Math.round(bytesDone / size * 100)) : 0;
    return bytes(bytesDone) + ' / ' + bytes(size) + ' · ' + pct + ' %' + (rate !== undefined ? ' · ' + bytes(rate) + '/s' : '');
  }
  function refreshTransfers() {
    return call('GET', '/transfers').then(function (r) {
      if (r.status !== 200) return;
      var box = clear($('transfers'));
      jobBars = {};
      var any = false;
      r.body.entries.forEach(function (e) {
        var section = el('div', { class: 'xfer-entry', 'data-testid': 'transfers-' + e.name }, [
          el('div', { class: 'xfer-head' }, [
            el('strong', { text: e.name }),
            el('span', { class: 'muted', text: e.running.length + ' running · ' + e.queued + ' queued' }),
          ]),
        ]);
        e.running.forEach(function (t) {
          any = true;
          var bar = el('div');
          var pct = t.size > 0 ? Math.min(100, t.bytes / t.size * 100) : (t.kind === 'upload' ? 0 : 100);
          bar.style.width = pct + '%';
          var fig = el('span', { class: 'figures', text: t.kind === 'upload' ? figures(t.bytes, t.size, t.rate) : t.kind });
          jobBars[e.name + '/' + t.id] = { bar: bar, figures: fig, size: t.size, kind: t.kind };
          var from = t.source ? t.source + ' → ' + e.name + ': ' : t.kind + ': ';
          section.appendChild(el('div', { class: 'job', 'data-testid': 'transfer-' + e.name + '-' + t.filename }, [
            el('span', { class: 'name', title: t.filename, text: from + t.filename }),
            fig,
            el('div', { class: 'bar' }, [bar]),
          ]));
        });
        if (e.waiting.length) {
          any = true;
          var list = el('ul', { class: 'waiting' });
          e.waiting.slice(0, 5).forEach(function (w) {
            list.appendChild(el('li', {
              text: w.kind + ' ' + w.filename + ' (' + bytes(w.size) + ')' +
                (w.attempts ? ' · ' + w.attempts + ' attempts' : '') + (w.lastError ? ' · ' + w.lastError : ''),
            }));
          });
          if (e.waiting.length > 5) list.appendChild(el('li', { text: '… and ' + (e.queued - 5) + ' more' }));
          section.appendChild(list);
        }
        box.appendChild(section);
      });
      if (!r.body.entries.length) box.appendChild(el('div', { class: 'empty', text: 'No entries.' }));
      else if (!any) box.appendChild(el('div', { class: 'empty', text: 'Nothing is being transferred: every entry is caught up.' }));
    });
  }
  function onProgress(p) {
    var j = jobBars[p.entry + '/' + p.job];
    if (!j) return;
    j.bar.style.width = (p.size > 0 ? Math.min(100, p.bytes / p.size * 100) : 0) + '%';
    j.figures.textContent = figures(p.bytes, p.size);
  }

  // ---- rules -------------------------------------------------------------------------------
  var rulesDirty = false;
  var rulesText = $('rules-text');
  rulesText.addEventListener('input', function () { rulesDirty = true; rulesText.classList.add('dirty'); });
  function setRulesMessage(kind, text) {
    var m = $('rules-message');
    m.className = 'message ' + kind;
    m.textContent = text;
  }
  function refreshRules(force) {
    return call('GET', '/rules').then(function (r) {
      if (r.status !== 200 || (rulesDirty && !force)) return;
      rulesText.value = JSON.stringify(r.body.rules, null, 2);
      rulesDirty = false;
      rulesText.classList.remove('dirty');
    });
  }
  function refreshDiff() {
    return call('GET', '/rules/diff').then(function (r) {
      if (r.status !== 200) return;
      var body = clear($('rules-diff'));
      if (!r.body.changes.length) {
        body.appendChild(el('tr', null, [el('td', { class: 'empty', colspan: 3, text: 'Nothing: a reload would change no file\u2019s owners.' })]));
      }
      r.body.changes.slice(0, 200).forEach(function (c) {
        body.appendChild(el('tr', { 'data-testid': 'diff-row-' + c.filename }, [
          el('td', { class: 'filename mono', text: c.filename }),
          el('td', { class: 'gain', text: c.gain.length ? '+ ' + c.gain.join(', ') : '' }),
          el('td', { class: 'lose', text: c.lose.length ? '− ' + c.lose.join(', ') : '' }),
        ]));
      });
      if (r.body.changes.length > 200) {
        body.appendChild(el('tr', null, [el('td', { class: 'empty', colspan: 3, text: '… and ' + (r.body.changes.length - 200) + ' more files' })]));
      }
    });
  }
  $('rules-stage').addEventListener('click', function () {
    var parsed;
    try { parsed = JSON.parse(rulesText.value); } catch (e) { setRulesMessage('error', 'not JSON: ' + e.message); return; }
    var body = Array.isArray(parsed) ? { rules: parsed } : parsed;
    call('PUT', '/rules', body).then(function (r) {
      if (r.status === 200) {
        setRulesMessage('ok', 'Staged. Nothing moves until you reload.');
        rulesDirty = false;
        rulesText.classList.remove('dirty');
        return Promise.all([refreshRules(true), refreshDiff(), refreshMachines()]);
      }
      setRulesMessage('error', reasonOf(r));
    }, function (err) { setRulesMessage('error', 'request failed: ' + err); });
  });
  $('rules-revert').addEventListener('click', function () {
    setRulesMessage('', '');
    refreshRules(true);
  });
  $('rules-reload').addEventListener('click', function () {
    var button = $('rules-reload');
    button.disabled = true;
    setRulesMessage('muted', 'Reloading…');
    call('PUT', '/rules/reload').then(function (r) {
      if (r.status === 200) setRulesMessage('ok', 'Reloaded: the staged rules are in force and written to the setup file.');
      else setRulesMessage('error', reasonOf(r));
    }, function (err) { setRulesMessage('error', 'request failed: ' + err); }).then(function () {
      button.disabled = false;
      return Promise.all([refreshDiff(), refreshFiles(), refreshMachines()]);
    });
  });

  // ---- event log ---------------------------------------------------------------------------
  function describe(e) {
    if (e.type === 'transition') return e.actor + '  ' + (e.from || '∅') + ' → ' + e.to + '  (' + e.event + ')';
    if (e.type === 'file') {
      return e.entry + ' ' + e.kind + ' ' + (e.from ? e.from + ' → ' : '') + e.path + (e.conflict ? '  (kept as ' + e.conflict + ')' : '');
    }
    if (e.type === 'progress') {
      return e.entry + ' ← ' + e.path + '  ' + figures(e.bytes, e.size);
    }
    if (e.type === 'gap') return 'missed events: the page was refreshed';
    return JSON.stringify(e);
  }
  function logEvent(e) {
    var top = logItems[0];
    // Progress of one job updates its line instead of flooding the log.
    if (e.type === 'progress' && top && top.e.type === 'progress' && top.e.entry === e.entry && top.e.job === e.job) {
      top.e = e;
      top.li.lastChild.textContent = describe(e);
      top.li.lastChild.title = describe(e);
      return;
    }
    var text = describe(e);
    var li = el('li', null, [
      el('span', { class: 't', text: clock(e.time) }),
      el('span', { class: 'k ' + e.type, text: e.type === 'file' ? e.kind : e.type }),
      el('span', { class: 'd', title: text, text: text }),
    ]);
    var list = $('log');
    var placeholder = list.querySelector('.placeholder');
    if (placeholder) placeholder.remove();
    list.insertBefore(li, list.firstChild);
    logItems.unshift({ e: e, li: li });
    while (logItems.length > 50) logItems.pop().li.remove();
  }

  // ---- live updates ------------------------------------------------------------------------
  var filesSoon = debounce(function () { refreshFiles(); refreshDiff(); }, 300);
  var transfersSoon = throttle(refreshTransfers, 250);
  var statsSoon = debounce(refreshStats, 200);

  function connect() {
    // EventSource sends no headers: the event stream takes the token in its URL.
    var source = new EventSource(API + '/events' + (TOKEN ? '?access_token=' + encodeURIComponent(TOKEN) : ''));
    var conn = $('connection');
    source.addEventListener('open', function () {
      conn.textContent = 'live';
      conn.className = 'badge conn live';
      resync();
    });
    source.addEventListener('error', function () {
      conn.textContent = 'reconnecting…';
      conn.className = 'badge conn down';
    });
    source.addEventListener('transition', function (m) {
      var e = JSON.parse(m.data);
      logEvent(e);
      seen[e.actor] = (seen[e.actor] || 0) + 1;
      var a = actors[e.actor] || (actors[e.actor] = { path: [], context: null });
      a.path = String(e.to).split('.');
      showActor(e.actor);
      if (e.entry) { statsSoon(); transfersSoon(); }
      if (e.actor === 'rules') { filesSoon(); refreshMachines(); }
    });
    source.addEventListener('file', function (m) {
      var e = JSON.parse(m.data);
      logEvent(e);
      filesSoon();
      transfersSoon();
    });
    source.addEventListener('progress', function (m) {
      var e = JSON.parse(m.data);
      logEvent(e);
      onProgress(e);
      transfersSoon();
    });
    source.addEventListener('gap', function (m) {
      logEvent({ type: 'gap', time: Date.now() / 1000 });
      resync();
    });
  }

  var entriesShown = null;
  function resync() {
    return call('GET', '/entries').then(function (r) {
      if (r.status !== 200) throw new Error(reasonOf(r));
      // Rebuilt only when the configured entries differ (a daemon restarted with another setup).
      var key = JSON.stringify(r.body.entries);
      if (key === entriesShown) return;
      entriesShown = key;
      entries = r.body.entries;
      cards = {};
      buildEntries();
      Object.keys(actors).forEach(function (id) { if (id !== 'rules') showActor(id); });
    }).then(function () {
      return Promise.all([refreshMachines().then(refreshStats), refreshFiles(), refreshTransfers(), refreshRules(false), refreshDiff()]);
    }).catch(function (err) { console.error('ferry dashboard:', err); });
  }

  $('subtitle').textContent = location.host;
  connect();
  /** Polling that stays quiet while the daemon is away (the connection badge says so). */
  function every(ms, fn) {
    setInterval(function () { Promise.resolve().then(fn).catch(function () {}); }, ms);
  }
  every(3000, refreshStats);
  every(1500, refreshTransfers);
  every(5000, refreshMachines);
  every(10000, refreshFiles);

  // For tests and the curious: the page's own statechart text.
  window.ferryDashboard = { toMermaid: toMermaid, machines: function () { return machines; } };
})();
</script>
</body>
</html>
`;
