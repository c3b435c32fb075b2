import fs from 'node:fs';
import type {
  Entries,
  Entry,
  EntryAction,
  EntryStats,
  EntryStatus,
  ErrorBody,
  File,
  Files,
  ListedFile,
  Machines,
  Ok,
  Rules,
  RulesDiff,
} from '../api/schemas.js';
import { ENTRY_STATES, MAX_LIMIT, NAME_PATTERN } from '../api/schemas.js';
import { ApiClient, CliError, EXIT, usage } from './http.js';
import { oneOf, wholeNumber, type OptionSpec } from './args.js';
import { binarySize, fields, humanDuration, list, localDateTime, parseDuration, table } from './format.js';

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
  /** One line, for the list of a group's commands (`ferry entries --help`). */
  brief: string;
  summary: string;
  /** Options of its own, beyond the global ones. */
  options?: Record<string, OptionSpec>;
  minArgs: number;
  maxArgs: number;
  run(ctx: CommandContext): Promise<number>;
}

const printJson = (ctx: CommandContext, value: unknown) => ctx.out(JSON.stringify(value, null, 2) + '\n');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `?a=1&b=x` of the parameters given (undefined ones left out). */
const query = (params: Record<string, string | number | boolean | undefined>) => {
  const given = Object.entries(params).filter(([, v]) => v !== undefined) as [string, string | number | boolean][];
  return given.length ? `?${given.map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&')}` : '';
};

/** Every file that matches the filters, page after page. */
async function allFiles(client: ApiClient, filters: { pending?: string; failing?: boolean; q?: string } = {}): Promise<ListedFile[]> {
  const files: ListedFile[] = [];
  for (let offset = 0; ; offset += MAX_LIMIT) {
    const page = await client.request<Files>('GET', `/files${query({ ...filters, offset, limit: MAX_LIMIT })}`);
    files.push(...page.files);
    if (page.files.length < MAX_LIMIT) return files;
  }
}

const ENTRY_NAME = new RegExp(NAME_PATTERN);

const control = (action: 'start' | 'stop' | 'restart' | 'rescan', done: string, brief: string, summary?: string): Command => ({
  path: ['entries', action],
  synopsis: `ferry entries ${action} NAME…${action === 'start' ? ' [--force]' : ''}`,
  brief,
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
        const body = await ctx.client().request<EntryAction>('PUT', `/entries/${encodeURIComponent(name)}/${action}${force}`);
        results.push(body);
        if (!ctx.json) ctx.out(`${name}: ${done}\n`);
      } catch (err) {
        if (!(err instanceof CliError) || err.code !== EXIT.refused) throw err;
        results.push({ name, reason: err.message, status: 'error' } satisfies ErrorBody & { name: string });
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
    brief: 'list the entries: name, driver, state, absolute root',
    summary: 'List the entries: name, driver, state, and the absolute folder each keeps (root_path).',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const client = ctx.client();
      const { entries } = await client.request<Entries>('GET', '/entries');
      const states = await Promise.all(
        entries.map((e) => client.request<EntryStatus>('GET', `/entries/${encodeURIComponent(e.name)}/status`)),
      );
      const rows = entries.map((e, i) => ({ ...e, status: states[i]!.status }));
      if (ctx.json) printJson(ctx, { entries: rows });
      else {
        ctx.out(
          table(
            ['NAME', 'DRIVER', 'STATE', 'ROOT'],
            rows.map((e) => [e.name, e.driver, e.status, e.root_path ?? String(e.options.root ?? '-')]),
          ),
        );
      }
      return EXIT.ok;
    },
  },
  {
    path: ['entries', 'show'],
    synopsis: 'ferry entries show NAME',
    brief: "an entry's driver and options, as the setup writes them",
    summary: "Show an entry's driver and options, as the setup file writes them, and its absolute root.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const entry = await ctx.client().request<Entry>('GET', `/entries/${encodeURIComponent(ctx.args[0]!)}`);
      if (ctx.json) printJson(ctx, entry);
      else {
        const rootPath: [string, unknown][] = entry.root_path === undefined ? [] : [['root_path', entry.root_path]];
        ctx.out(fields([['name', entry.name], ['driver', entry.driver], ...Object.entries(entry.options), ...rootPath]));
      }
      return EXIT.ok;
    },
  },
  {
    path: ['entries', 'status'],
    synopsis: 'ferry entries status NAME',
    brief: "an entry's state: active, stopped or restarting",
    summary: "Print an entry's state: active, stopped or restarting.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const status = await ctx.client().request<EntryStatus>('GET', `/entries/${encodeURIComponent(ctx.args[0]!)}/status`);
      if (ctx.json) printJson(ctx, status);
      else ctx.out(`${status.status}\n`);
      return EXIT.ok;
    },
  },
  {
    path: ['entries', 'stats'],
    synopsis: 'ferry entries stats NAME',
    brief: "an entry's worker process: pid, start, cpu, memory",
    summary:
      "Show an entry's worker process: pid, when it started (local time) and its age, CPU use and time, memory, restarts. --json prints the API's numbers as they are.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const stats = await ctx.client().request<EntryStats>('GET', `/entries/${encodeURIComponent(ctx.args[0]!)}/stats`);
      if (ctx.json) printJson(ctx, stats);
      else {
        const { info } = stats;
        ctx.out(
          fields([
            ['name', stats.name],
            ['pid', String(info.pid)],
            ['started', `${localDateTime(info.started)} (age ${humanDuration(info.age)})`],
            ['cpu', `${info.cpu.toFixed(1)} %`],
            ['cpu time', info.ctime],
            ['memory', `${binarySize(info.mem_info1)} resident (${info.mem.toFixed(1)} % of RAM), ${binarySize(info.mem_info2)} virtual`],
            ['restarts', String(info.restarts)],
          ]),
        );
      }
      return EXIT.ok;
    },
  },
  control('start', 'started', 'start entries (--force: apply the mass deletions a start refuses)'),
  control('stop', 'stopped', 'stop entries: their worker ends, their jobs wait'),
  control('restart', 'restarted', 'stop and start entries (a new worker)'),
  control(
    'rescan',
    'rescanned',
    "compare entries' storage with the store now",
    'Compare each entry\'s storage with the store now (what the watcher missed is found), and return once it is recorded and queued; exit 1 if any is not running.',
  ),
  {
    path: ['entries', 'wait'],
    synopsis: 'ferry entries wait NAME --state active|stopped [--synced] [--timeout 30s]',
    brief: 'block until an entry is in a state (and up to date, --synced)',
    summary:
      'Block until the entry is in that state (and, with --synced, holds the latest version of every file it owns); exit 4 on timeout.',
    options: {
      state: { type: 'string', value: 'STATE', help: 'active, stopped or restarting (required)' },
      synced: { type: 'boolean', help: 'also wait until the entry is up to date with every file it owns' },
      timeout: { type: 'string', value: 'DURATION', help: 'how long to wait: 30s (default), 500ms, 2m' },
    },
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const name = ctx.args[0]!;
      if (typeof ctx.options.state !== 'string') throw usage('entries wait needs --state active|stopped');
      const state = oneOf('state', ctx.options.state, ENTRY_STATES);
      const timeoutText = typeof ctx.options.timeout === 'string' ? ctx.options.timeout : '30s';
      const timeout = parseDuration(timeoutText);
      if (timeout === null) throw usage(`--timeout: must be a duration such as 30s, 500ms or 2m (got ${timeoutText})`);
      const client = ctx.client();
      const deadline = Date.now() + timeout;
      let last = '';
      for (;;) {
        const status = await client.request<EntryStatus>('GET', `/entries/${encodeURIComponent(name)}/status`);
        last = status.status;
        let behind: ListedFile[] = [];
        if (last === state && ctx.options.synced) {
          // The daemon lists the files the entry owns and lacks in their latest version.
          behind = await allFiles(client, { pending: name });
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
    brief: 'the staged rules, as JSON',
    summary: 'Show the staged rules (the active ones, unless new rules were set and not reloaded).',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      printJson(ctx, await ctx.client().request<Rules>('GET', '/rules'));
      return EXIT.ok;
    },
  },
  {
    path: ['rules', 'set'],
    synopsis: 'ferry rules set FILE|-',
    brief: 'stage rules from a JSON file or stdin (nothing moves yet)',
    summary: 'Stage rules from a JSON file or stdin: {"rules": [...]} or a bare list. Apply them with "ferry rules reload".',
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const source = ctx.args[0]!;
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
      const answer = await ctx.client().request<Ok>('PUT', '/rules', body);
      if (ctx.json) printJson(ctx, answer);
      else ctx.out(`rules staged; "ferry rules diff" shows what a reload would change, "ferry rules reload" applies them\n`);
      return EXIT.ok;
    },
  },
  {
    path: ['rules', 'reload'],
    synopsis: 'ferry rules reload',
    brief: 'apply the staged rules, and write them into the setup file',
    summary: 'Apply the staged rules to every file, and write them into the setup file.',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const answer = await ctx.client().request<Ok>('PUT', '/rules/reload');
      if (ctx.json) printJson(ctx, answer);
      else ctx.out('rules applied\n');
      return EXIT.ok;
    },
  },
  {
    path: ['rules', 'diff'],
    synopsis: 'ferry rules diff',
    brief: 'what a reload would change: owners gained and lost, per file',
    summary: 'What a reload would change: for each file whose owners would change, the entries it gains and loses.',
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const diff = await ctx.client().request<RulesDiff>('GET', '/rules/diff');
      if (ctx.json) printJson(ctx, diff);
      else if (diff.changes.length === 0) ctx.out('a reload would change no owner\n');
      else ctx.out(table(['FILENAME', 'GAINS', 'LOSES'], diff.changes.map((c) => [c.filename, list(c.gain), list(c.lose)])));
      return EXIT.ok;
    },
  },
  {
    path: ['files'],
    synopsis: 'ferry files [--offset N] [--limit N] [--all] [--pending NAME] [--failing] [--search TEXT]',
    brief: 'list files by name: size, owners, entries up to date',
    summary:
      'List files ordered by name: size, owners, entries up to date. The filters combine, and page with --offset and --limit: ' +
      '--pending NAME, the files NAME owns and lacks in their latest version; --failing, the files whose copy keeps failing, with the reason; ' +
      '--search TEXT, the files whose name contains TEXT (any case).',
    options: {
      offset: { type: 'string', value: 'N', help: 'skip this many files (default 0)' },
      limit: { type: 'string', value: 'N', help: `show at most this many, 1 to ${MAX_LIMIT} (default 20)` },
      all: { type: 'boolean', help: 'every file, page after page' },
      pending: { type: 'string', value: 'NAME', help: 'only the files entry NAME owns and does not hold in their latest version' },
      failing: { type: 'boolean', help: 'only the files with a job that failed and is retried, with its reason' },
      search: { type: 'string', value: 'TEXT', help: 'only the files whose name contains TEXT, whatever the case' },
    },
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const text = (name: string) => (typeof ctx.options[name] === 'string' ? (ctx.options[name] as string) : undefined);
      const offsetText = text('offset');
      const limitText = text('limit');
      const offset = offsetText === undefined ? undefined : wholeNumber('offset', offsetText, 0);
      const limit = limitText === undefined ? undefined : wholeNumber('limit', limitText, 1, MAX_LIMIT);
      if (ctx.options.all && (offset !== undefined || limit !== undefined)) throw usage('--all takes neither --offset nor --limit');
      const pending = text('pending');
      if (pending !== undefined && !ENTRY_NAME.test(pending)) {
        throw usage(`--pending: must be an entry name: letters, digits, _ . - (got ${pending})`);
      }
      const q = text('search');
      if (q === '') throw usage('--search: must not be empty');
      const filters = { pending, failing: ctx.options.failing === true ? true : undefined, q };
      const client = ctx.client();
      const files = ctx.options.all
        ? await allFiles(client, filters)
        : (await client.request<Files>('GET', `/files${query({ offset: offset ?? 0, limit: limit ?? 20, ...filters })}`)).files;
      if (ctx.json) printJson(ctx, { files });
      else {
        const headers = ['FILENAME', 'SIZE', 'OWNERS', 'UPTODATE'];
        const row = (f: ListedFile) => [f.filename, String(f.size), list(f.owners), list(f.uptodate)];
        ctx.out(
          filters.failing
            ? table([...headers, 'REASON'], files.map((f) => [...row(f), f.reason ?? '-']))
            : table(headers, files.map(row)),
        );
      }
      return EXIT.ok;
    },
  },
  {
    path: ['files', 'show'],
    synopsis: 'ferry files show FID|PATH',
    brief: "one file's metadata, by fid or by path",
    summary: "Show one file's metadata, by fid or by path.",
    minArgs: 1,
    maxArgs: 1,
    async run(ctx) {
      const which = ctx.args[0]!;
      // paths.js (and uuid with it) only here: the one command that computes a fid.
      const fid = UUID.test(which) ? which.toLowerCase() : (await import('../paths.js')).fidOf(which.replace(/^\/+/, ''));
      const file = await ctx
        .client()
        .request<File>('GET', `/files/${fid}/metadata`)
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
    brief: "the state machines' definitions and live states",
    summary:
      "Print the state machines' definitions: as JSON (machine.toJSON(), with each actor's live state), or as mermaid state diagrams (Markdown blocks; one bare diagram with --machine).",
    options: {
      format: { type: 'string', value: 'FORMAT', help: 'json (default) or mermaid' },
      machine: { type: 'string', value: 'NAME', help: 'only this machine: entry or rules' },
    },
    minArgs: 0,
    maxArgs: 0,
    async run(ctx) {
      const format = oneOf('format', String(ctx.options.format ?? 'json'), ['json', 'mermaid'] as const);
      const only = ctx.options.machine === undefined ? undefined : oneOf('machine', String(ctx.options.machine), ['entry', 'rules'] as const);
      const debug = await ctx.client().request<Machines>('GET', '/debug/machines');
      const names = only ? [only] : (['entry', 'rules'] as const);
      if (format === 'json') {
        printJson(ctx, only ? debug.machines[only] : debug);
      } else if (only) {
        ctx.out(debug.mermaid[only]);
      } else {
        ctx.out(names.map((n) => `## ${n}\n\n\`\`\`mermaid\n${debug.mermaid[n]}\`\`\`\n`).join('\n'));
      }
      return EXIT.ok;
    },
  },
];
