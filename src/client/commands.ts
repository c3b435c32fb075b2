import fs from 'node:fs';
import { fidOf } from '../paths.js';
import { ApiClient, CliError, EXIT, usage } from './http.js';
import { fields, list, parseDuration, table } from './format.js';

/** What every client command is given: its positional words, its options, and the output. */
export interface CommandContext {
  args: string[];
  options: Record<string, string | boolean | undefined>;
  json: boolean;
  client: () => ApiClient;
  out: (text: string) => void;
  err: (text: string) => void;
  stdin: () => Promise<string>;
}

export interface Command {
  /** The words that name it: `['entries', 'start']`. */
  path: string[];
  synopsis: string;
  summary: string;
  /** Options of its own, beyond the global ones. */
  options?: Record<string, { type: 'string' | 'boolean'; help: string }>;
  minArgs: number;
  maxArgs: number;
  run(ctx: CommandContext): Promise<number>;
}

interface EntryJson {
  name: string;
  driver: string;
  options: Record<string, unknown>;
}
interface FileJson {
  fid: string;
  filename: string;
  size: number;
  owners: string[];
  uptodate: string[];
}
interface StatusJson {
  name: string;
  status: string;
  time: number;
}

const printJson = (ctx: CommandContext, value: unknown) => ctx.out(JSON.stringify(value, null, 2) + '\n');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Every file, page after page. */
async function allFiles(client: ApiClient): Promise<FileJson[]> {
  const files: FileJson[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await client.request<{ files: FileJson[] }>('GET', `/files?offset=${offset}&limit=1000`);
    files.push(...page.files);
    if (page.files.length < 1000) return files;
  }
}

const control = (action: 'start' | 'stop' | 'restart' | 'rescan', done: string, summary?: string): Command => ({
  path: ['entries', action],
  synopsis: `ferry entries ${action} NAME…${action === 'start' ? ' [--force]' : ''}`,
  summary: summary ?? `${action[0].toUpperCase()}${action.slice(1)} entries, each in turn; exit 1 if any was refused.`,
  ...(action === 'start'
    ? {
        options: {
          force: {
            type: 'boolean' as const,
            help: 'apply what a start would refuse: deleting most of the entry\'s files (after a rescan or a reload)',
          },
        },
      }
    : {}),
  minArgs: 1,
  maxArgs: Infinity,
  async run(ctx) {
    let code: number = EXIT.ok;
    const results: unknown[] = [];
    for (const name of ctx.args) {
      try {
        const force = action === 'start' && ctx.options.force ? '?force=true' : '';
        const body = await ctx.client().request<StatusJson>('PUT', `/entries/${encodeURIComponent(name)}/${action}${force}`);
        results.push(body);
        if (!ctx.json) ctx.out(`${name}: ${done}\n`);
      } catch (err) {
        if (!(err instanceof CliError) || err.code !== EXIT.refused) throw err;
        results.push({ name, reason: err.message, status: 'error' });
        ctx.err(`ferry: ${err.message}\n`);
        code = EXIT.refused;
      }
    }
    if (ctx.json) printJson(ctx, results.length === 1 ? results[0] : results);
    return code;
  },
});

export const commands: Command[] = [
  {
    path: ['entries'],
    synopsis: 'ferry entries',
    summary: 'List the entries: name, driver, state, root.',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const client = ctx.client();
      const { entries } = await client.request<{ entries: EntryJson[] }>('GET', '/entries');
      const states = await Promise.all(
        entries.map((e) => client.request<StatusJson>('GET', `/entries/${encodeURIComponent(e.name)}/status`)),
      );
      const rows = entries.map((e, i) => ({ ...e, status: states[i].status }));
      if (ctx.json) printJson(ctx, { entries: rows });
      else {
        ctx.out(
          table(
            ['NAME', 'DRIVER', 'STATE', 'ROOT'],
            rows.map((e) => [e.name, e.driver, e.status, String(e.options.root ?? '-')]),
          ),
        );
      }
      return EXIT.ok;
    },
  },
  {
    path: ['entries', 'show'],
    synopsis: 'ferry entries show NAME',
    summary: "Show an entry's driver and options.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const entry = await ctx.client().request<EntryJson>('GET', `/entries/${encodeURIComponent(ctx.args[0])}`);
      if (ctx.json) printJson(ctx, entry);
      else ctx.out(fields([['name', entry.name], ['driver', entry.driver], ...Object.entries(entry.options)]));
      return EXIT.ok;
    },
  },
  {
    path: ['entries', 'status'],
    synopsis: 'ferry entries status NAME',
    summary: "Print an entry's state: active, stopped or restarting.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const status = await ctx.client().request<StatusJson>('GET', `/entries/${encodeURIComponent(ctx.args[0])}/status`);
      if (ctx.json) printJson(ctx, status);
      else ctx.out(`${status.status}\n`);
      return EXIT.ok;
    },
  },
  {
    path: ['entries', 'stats'],
    synopsis: 'ferry entries stats NAME',
    summary: "Show an entry's worker process: pid, age, cpu, memory.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const stats = await ctx
        .client()
        .request<{ info: Record<string, unknown>; name: string }>('GET', `/entries/${encodeURIComponent(ctx.args[0])}/stats`);
      if (ctx.json) printJson(ctx, stats);
      else ctx.out(fields([['name', stats.name], ...Object.entries(stats.info)]));
      return EXIT.ok;
    },
  },
  control('start', 'started'),
  control('stop', 'stopped'),
  control('restart', 'restarted'),
  control(
    'rescan',
    'rescanned',
    'Compare each entry\'s storage with the store now (what the watcher missed is found), and return once it is recorded and queued; exit 1 if any is not running.',
  ),
  {
    path: ['entries', 'wait'],
    synopsis: 'ferry entries wait NAME --state active|stopped [--synced] [--timeout 30s]',
    summary:
      'Block until the entry is in that state (and, with --synced, holds the latest version of every file it owns); exit 4 on timeout.',
    options: {
      state: { type: 'string', help: 'active, stopped or restarting (required)' },
      synced: { type: 'boolean', help: 'also wait until the entry is up to date with every file it owns' },
      timeout: { type: 'string', help: 'how long to wait: 30s (default), 500ms, 2m' },
    },
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const [name] = ctx.args;
      const state = ctx.options.state;
      if (typeof state !== 'string') throw usage('entries wait needs --state active|stopped');
      if (!['active', 'stopped', 'restarting'].includes(state)) throw usage(`--state: one of active, stopped, restarting (not ${state})`);
      const timeoutText = typeof ctx.options.timeout === 'string' ? ctx.options.timeout : '30s';
      const timeout = parseDuration(timeoutText);
      if (timeout === null) throw usage(`--timeout: not a duration: ${timeoutText} (use 30s, 500ms, 2m)`);
      const client = ctx.client();
      const deadline = Date.now() + timeout;
      let last = '';
      for (;;) {
        const status = await client.request<StatusJson>('GET', `/entries/${encodeURIComponent(name)}/status`);
        last = status.status;
        let behind: FileJson[] = [];
        if (last === state && ctx.options.synced) {
          behind = (await allFiles(client)).filter((f) => f.owners.includes(name) && !f.uptodate.includes(name));
          last = `${state}, ${behind.length} file${behind.length === 1 ? '' : 's'} not up to date`;
        }
        if (status.status === state && behind.length === 0) {
          if (ctx.json) printJson(ctx, status);
          else ctx.out(`${name}: ${state}${ctx.options.synced ? ', up to date' : ''}\n`);
          return EXIT.ok;
        }
        if (Date.now() >= deadline) {
          throw new CliError(EXIT.timeout, `timed out after ${timeoutText} waiting for entry ${name} to be ${state} (it is ${last})`);
        }
        await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
      }
    },
  },
  {
    path: ['rules'],
    synopsis: 'ferry rules',
    summary: 'Show the staged rules (the active ones, unless new rules were set and not reloaded).',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      printJson(ctx, await ctx.client().request('GET', '/rules'));
      return EXIT.ok;
    },
  },
  {
    path: ['rules', 'set'],
    synopsis: 'ferry rules set FILE|-',
    summary: 'Stage rules from a JSON file or stdin: {"rules": [...]} or a bare list. Apply them with "ferry rules reload".',
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const [source] = ctx.args;
      let text: string;
      try {
        text = source === '-' ? await ctx.stdin() : fs.readFileSync(source, 'utf8');
      } catch (err) {
        throw usage(`cannot read ${source}: ${(err as Error).message}`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw usage(`${source === '-' ? 'stdin' : source}: invalid JSON: ${(err as Error).message}`);
      }
      const body = Array.isArray(parsed) ? { rules: parsed } : parsed;
      const answer = await ctx.client().request('PUT', '/rules', body);
      if (ctx.json) printJson(ctx, answer);
      else ctx.out(`rules staged; "ferry rules diff" shows what a reload would change, "ferry rules reload" applies them\n`);
      return EXIT.ok;
    },
  },
  {
    path: ['rules', 'reload'],
    synopsis: 'ferry rules reload',
    summary: 'Apply the staged rules to every file, and write them into the setup file.',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const answer = await ctx.client().request('PUT', '/rules/reload');
      if (ctx.json) printJson(ctx, answer);
      else ctx.out('rules applied\n');
      return EXIT.ok;
    },
  },
  {
    path: ['rules', 'diff'],
    synopsis: 'ferry rules diff',
    summary: 'What a reload would change: for each file whose owners would change, the entries it gains and loses.',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const diff = await ctx
        .client()
        .request<{ changes: { filename: string; gain: string[]; lose: string[] }[] }>('GET', '/rules/diff');
      if (ctx.json) printJson(ctx, diff);
      else if (diff.changes.length === 0) ctx.out('a reload would change no owner\n');
      else ctx.out(table(['FILENAME', 'GAINS', 'LOSES'], diff.changes.map((c) => [c.filename, list(c.gain), list(c.lose)])));
      return EXIT.ok;
    },
  },
  {
    path: ['files'],
    synopsis: 'ferry files [--offset N] [--limit N] [--all]',
    summary: 'List files ordered by name: size, owners, entries up to date.',
    options: {
      offset: { type: 'string', help: 'skip this many files (default 0)' },
      limit: { type: 'string', help: 'show at most this many (default 20, at most 1000)' },
      all: { type: 'boolean', help: 'every file, page after page' },
    },
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const number = (name: string): string | null => {
        const v = ctx.options[name];
        if (v === undefined) return null;
        if (typeof v !== 'string' || !/^\d+$/.test(v)) throw usage(`--${name}: not a non-negative integer: ${v}`);
        return v;
      };
      const offset = number('offset');
      const limit = number('limit');
      if (ctx.options.all && (offset !== null || limit !== null)) throw usage('--all takes neither --offset nor --limit');
      const client = ctx.client();
      const files = ctx.options.all
        ? await allFiles(client)
        : (await client.request<{ files: FileJson[] }>('GET', `/files?offset=${offset ?? 0}&limit=${limit ?? 20}`)).files;
      if (ctx.json) printJson(ctx, { files });
      else {
        ctx.out(
          table(
            ['FILENAME', 'SIZE', 'OWNERS', 'UPTODATE'],
            files.map((f) => [f.filename, String(f.size), list(f.owners), list(f.uptodate)]),
          ),
        );
      }
      return EXIT.ok;
    },
  },
  {
    path: ['files', 'show'],
    synopsis: 'ferry files show FID|PATH',
    summary: "Show one file's metadata, by fid or by path.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const [which] = ctx.args;
      const fid = UUID.test(which) ? which.toLowerCase() : fidOf(which.replace(/^\/+/, ''));
      const file = await ctx
        .client()
        .request<FileJson>('GET', `/files/${fid}/metadata`)
        .catch((err: unknown) => {
          // Name the path the user gave, not only the fid computed from it.
          if (err instanceof CliError && err.code === EXIT.refused && fid !== which.toLowerCase()) {
            throw new CliError(EXIT.refused, `file ${which} not found (fid ${fid})`);
          }
          throw err;
        });
      if (ctx.json) printJson(ctx, file);
      else {
        ctx.out(
          fields([
            ['fid', file.fid],
            ['filename', file.filename],
            ['size', String(file.size)],
            ['owners', list(file.owners)],
            ['uptodate', list(file.uptodate)],
          ]),
        );
      }
      return EXIT.ok;
    },
  },
  {
    path: ['machines'],
    synopsis: 'ferry machines [--format json|mermaid] [--machine entry|rules]',
    summary:
      "Print the state machines' definitions: as JSON (machine.toJSON(), with each actor's live state), or as mermaid state diagrams (Markdown blocks; one bare diagram with --machine).",
    options: {
      format: { type: 'string', help: 'json (default) or mermaid' },
      machine: { type: 'string', help: 'only this machine: entry or rules' },
    },
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const format = ctx.options.format ?? 'json';
      if (format !== 'json' && format !== 'mermaid') throw usage(`--format: json or mermaid (not ${String(format)})`);
      const only = ctx.options.machine;
      if (only !== undefined && only !== 'entry' && only !== 'rules') throw usage(`--machine: entry or rules (not ${String(only)})`);
      const debug = await ctx.client().request<{
        machines: Record<string, unknown>;
        mermaid: Record<string, string>;
        actors: unknown[];
      }>('GET', '/debug/machines');
      const names = only ? [only as string] : Object.keys(debug.machines);
      if (format === 'json') {
        printJson(ctx, only ? debug.machines[only as string] : debug);
      } else if (only) {
        ctx.out(debug.mermaid[only as string]);
      } else {
        ctx.out(names.map((n) => `## ${n}\n\n\`\`\`mermaid\n${debug.mermaid[n]}\`\`\`\n`).join('\n'));
      }
      return EXIT.ok;
    },
  },
];
