#!/usr/bin/env node
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgv, oneOf, wholeNumber, type OptionSpec } from './client/args.js';
import { commands, type Command } from './client/commands.js';
import { ApiClient, CliError, DEFAULT_API, EXIT, usage } from './client/http.js';
import { forkSpares } from './worker-fork.js';

// Only `ferry start` loads the daemon (SQLite, Fastify, XState, pino): by dynamic import, in
// START below. Every other command is a small client of the REST API and starts fast.

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  api: { type: 'string', value: 'URL', help: `the daemon's URL (default ${DEFAULT_API}, or $FERRY_API)` },
  token: { type: 'string', value: 'TOKEN', help: 'the bearer token the daemon requires (or $FERRY_TOKEN); for start, the token to require' },
  json: { type: 'boolean', help: "print the API's JSON, one document (for jq)" },
  help: { type: 'boolean', help: 'help on ferry, on a group of commands (ferry entries --help) or on one command' },
  version: { type: 'boolean', help: 'the version' },
};

/**
 * The drivers of the setup's entries, as far as a glance at the file tells: workers are forked
 * for them ahead of the daemon. A file the daemon will refuse gives none (it says why).
 */
function setupDrivers(file: string): string[] {
  try {
    const entries = (JSON.parse(readFileSync(file, 'utf8')) as { entries?: unknown }).entries;
    if (typeof entries !== 'object' || entries === null) return [];
    return Object.values(entries).flatMap((e) => (typeof (e as { driver?: unknown })?.driver === 'string' ? [(e as { driver: string }).driver] : []));
  } catch {
    return [];
  }
}

const START: Command = {
  path: ['start'],
  synopsis:
    'ferry start --setup FILE [--data-dir DIR] [--host 127.0.0.1] [--port 3862] [--token T] [--cors ORIGIN] [--log-level info] [--inspect]',
  brief: 'run the daemon in the foreground',
  summary: 'Run the daemon in the foreground; SIGINT or SIGTERM stop it. An invalid setup exits 2.',
  options: {
    setup: { type: 'string', value: 'FILE', help: 'the setup file (JSON: entries and rules)' },
    'data-dir': { type: 'string', value: 'DIR', help: 'where the store lives (default: .ferry/ beside the setup file)' },
    host: { type: 'string', value: 'ADDRESS', help: 'address the API binds (default 127.0.0.1; any other needs --token)' },
    port: { type: 'string', value: 'PORT', help: 'port of the API (default 3862; 0 picks a free one)' },
    'log-level': { type: 'string', value: 'LEVEL', help: `${LEVELS.join(', ')} (default info)` },
    cors: { type: 'string', value: 'ORIGIN', help: 'the one browser origin allowed to call the API (default: none)' },
    inspect: { type: 'boolean', help: 'log every XState inspection event, at debug level (implies --log-level debug)' },
  },
  minArgs: 0,
  maxArgs: 0,
  async run({ options: values }) {
    const setupFile = values.setup;
    if (typeof setupFile !== 'string') throw usage('start needs --setup FILE');
    const host = typeof values.host === 'string' ? values.host : '127.0.0.1';
    const port = typeof values.port === 'string' ? wholeNumber('port', values.port, 0, 65535) : 3862;
    // --inspect logs at debug level: it implies that level unless one is given.
    const level = oneOf('log-level', typeof values['log-level'] === 'string' ? values['log-level'] : values.inspect ? 'debug' : 'info', LEVELS);
    // The bundle (scripts/build-daemon.mjs) starts faster; tsc's build of the same modules else.
    const bundle = new URL('../daemon/cli-start.js', import.meta.url);
    const bundled = existsSync(bundle);
    // The entries' workers are forked first, to start node and load their drivers while the
    // daemon's own code loads (they wait for it, and touch nothing until it gives them an entry).
    const spares = bundled ? forkSpares(setupDrivers(setupFile), fileURLToPath(new URL('../daemon/worker-host.js', import.meta.url))) : undefined;
    const { runDaemon } = (await import(bundled ? bundle.href : './cli-start.js')) as typeof import('./cli-start.js');
    await runDaemon({
      spares,
      setupFile,
      dataDir: values['data-dir'] as string | undefined,
      host,
      port,
      level,
      inspect: values.inspect === true,
      token: typeof values.token === 'string' ? values.token : process.env.FERRY_TOKEN || undefined,
      cors: typeof values.cors === 'string' ? values.cors : undefined,
    });
    return -1; // keeps running
  },
};

const ALL: Command[] = [START, ...commands];

const EXIT_CODES = `Exit codes:
  0  done
  1  the daemon refused (its reason is printed on stderr), or the daemon failed
  2  bad usage, an invalid setup file, or (start) a data dir or port another ferry uses
  3  the daemon is unreachable (the URL tried is printed)
  4  timed out waiting`;

function optionLines(options: Record<string, OptionSpec>): string {
  const rows = Object.entries(options).map(([name, o]) => [`--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`, o.help]);
  const width = Math.max(...rows.map(([n]) => n!.length));
  return rows.map(([n, h]) => `  ${n!.padEnd(width)}  ${h}`).join('\n');
}

/** The commands under a group's words (`entries` → entries show, entries stop…), the group's own first. */
const groupOf = (command: Command) =>
  ALL.filter((c) => c.path.length >= command.path.length && command.path.every((w, i) => c.path[i] === w));

const commandWords = (c: Command) => `ferry ${c.path.join(' ')}${c.synopsis.slice(`ferry ${c.path.join(' ')}`.length).replace(/ \[?--.*$/, '')}`;

function commandList(list: Command[]): string {
  const rows = list.map((c) => [commandWords(c), c.brief]);
  const width = Math.max(...rows.map(([w]) => w!.length));
  return rows.map(([w, b]) => `  ${w!.padEnd(width)}  ${b}`).join('\n');
}

/** A paragraph wrapped at 100 columns. */
function wrap(text: string, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].join('\n');
}

const GLOBAL_HELP = `Global options:\n${optionLines(GLOBAL_OPTIONS)}\n\n${EXIT_CODES}\n`;

function help(command?: Command): string {
  if (!command) {
    return `Usage: ferry [--api URL] [--json] COMMAND [ARGS]

Ferry keeps files in sync between entries according to rules. "ferry start" runs the daemon;
every other command is a client of a running daemon's REST API.

Commands:
${commandList(ALL)}

"ferry GROUP --help" (entries, rules, files) lists a group's commands; "ferry COMMAND --help"
tells more of one command.

${GLOBAL_HELP}`;
  }
  const own = command.options ? `\nOptions:\n${optionLines(command.options)}\n` : '';
  const group = groupOf(command);
  if (group.length > 1) {
    const name = `ferry ${command.path.join(' ')}`;
    const alone = command.synopsis === name ? '' : `\n       ${command.synopsis}`;
    return `Usage: ${name} [COMMAND] [ARGS]${alone}

${wrap(command.summary)}

Commands:
${commandList(group)}
${own}
"${name} COMMAND --help" tells more of one command.

${GLOBAL_HELP}`;
  }
  return `Usage: ${command.synopsis}\n\n${wrap(command.summary)}\n${own}\n${GLOBAL_HELP}`;
}

/** The command named, for the hint after a usage error. */
let named: Command | undefined;

async function main(argv: string[]): Promise<number> {
  const options: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS };
  for (const c of ALL) for (const [key, spec] of Object.entries(c.options ?? {})) if (!(key in GLOBAL_OPTIONS)) options[key] = spec;
  // A command's own option named as a global one (`files restore --version ID`) is the command's
  // when the command's words are given.
  const shadowing = ALL.find(
    (c) => Object.keys(c.options ?? {}).some((k) => k in GLOBAL_OPTIONS) && argv.some((_, i) => c.path.every((w, j) => argv[i + j] === w)),
  );
  if (shadowing) Object.assign(options, shadowing.options);
  const { values, positionals } = parseArgv(argv, options);
  if (values.version === true) {
    process.stdout.write(`ferry ${version}\n`);
    return EXIT.ok;
  }
  // The longest command path the positional words start with.
  const command = ALL.filter((c) => c.path.every((w, i) => positionals[i] === w)).sort(
    (a, b) => b.path.length - a.path.length,
  )[0];
  if (!command) {
    if (positionals.length === 0) {
      // Asked for, the usage goes to stdout; as the answer to a missing command, to stderr.
      (values.help ? process.stdout : process.stderr).write(help());
      return values.help ? EXIT.ok : EXIT.usage;
    }
    throw usage(`unknown command: ${positionals.join(' ')}`);
  }
  named = command;
  const args = positionals.slice(command.path.length);
  if (values.help) {
    // "ferry entries frobnicate --help": not a command to tell of.
    if (args.length > command.maxArgs && command.maxArgs === 0) throw usage(`unknown command: ${positionals.join(' ')}`);
    process.stdout.write(help(command));
    return EXIT.ok;
  }
  const name = `ferry ${command.path.join(' ')}`;
  for (const key of Object.keys(values)) {
    if (!(key in GLOBAL_OPTIONS) && !(command.options && key in command.options)) {
      throw usage(`${name} takes no --${key}`);
    }
  }
  if (args.length < command.minArgs) throw usage(`missing argument: ${command.synopsis}`);
  if (args.length > command.maxArgs) {
    // "ferry entries frobnicate A" reads better as an unknown command than as an extra argument.
    const known = groupOf(command).length > 1;
    throw usage(known && command.maxArgs === 0 ? `unknown command: ${positionals.join(' ')}` : `too many arguments: ${command.synopsis}`);
  }
  const api = typeof values.api === 'string' ? values.api : (process.env.FERRY_API ?? DEFAULT_API);
  let client: ApiClient | undefined;
  return command.run({
    args,
    options: values,
    json: values.json === true,
    client: () =>
      (client ??= new ApiClient(api, typeof values.token === 'string' ? values.token : process.env.FERRY_TOKEN || undefined)),
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    stdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err) => {
    if (err instanceof CliError) {
      process.stderr.write(`ferry: ${err.message}\n`);
      if (err.code === EXIT.usage) {
        // The help of the command given, or of its group, or of ferry.
        process.stderr.write(`Try '${named ? `ferry ${named.path.join(' ')}` : 'ferry'} --help'.\n`);
      }
      process.exitCode = err.code;
      return;
    }
    process.stderr.write(`ferry: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
