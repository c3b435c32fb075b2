#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import type { Level } from 'pino';
import { Daemon, UsageError } from './daemon.js';
import { createLogger } from './logger.js';
import { SetupError } from './setup.js';
import { commands, type Command } from './client/commands.js';
import { ApiClient, CliError, DEFAULT_API, EXIT, usage } from './client/http.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function throwUsage(message: string): never {
  throw usage(message);
}

/** `ferry start`: the daemon in the foreground. */
async function start(values: Record<string, string | boolean | undefined>): Promise<void> {
  const setupFile = values.setup;
  if (typeof setupFile !== 'string') throwUsage('start needs --setup FILE');
  const host = typeof values.host === 'string' ? values.host : '127.0.0.1';
  const portText = typeof values.port === 'string' ? values.port : '3862';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throwUsage(`--port: not a port number: ${portText}`);
  // --inspect logs at debug level: it implies that level unless one is given.
  const level = typeof values['log-level'] === 'string' ? values['log-level'] : values.inspect ? 'debug' : 'info';
  if (!LEVELS.includes(level)) throwUsage(`--log-level: one of ${LEVELS.join(', ')}`);

  const logger = createLogger(level as Level);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      setupFile,
      dataDir: values['data-dir'] as string | undefined,
      host,
      port,
      logger,
      inspect: values.inspect === true,
      token: typeof values.token === 'string' ? values.token : process.env.FERRY_TOKEN || undefined,
      cors: typeof values.cors === 'string' ? values.cors : undefined,
    });
  } catch (err) {
    // One line, never a stack: exit 2 for a start refused as asked (bad setup, data dir or port
    // in use), 1 for anything that went wrong.
    const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();
    if (err instanceof SetupError || err instanceof UsageError) {
      process.stderr.write(`ferry: ${oneLine(err.message)}\n`);
      process.exit(2);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      process.stderr.write(`ferry: cannot listen on ${host}:${port}: ${oneLine((err as Error).message)}\n`);
      process.exit(2);
    }
    process.stderr.write(`ferry: failed to start: ${oneLine(err instanceof Error ? err.message : String(err))}\n`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    daemon.stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`ferry: error while stopping: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

const GLOBAL_OPTIONS = {
  api: { type: 'string', help: `the daemon's URL (default ${DEFAULT_API}, or $FERRY_API)` },
  token: { type: 'string', help: 'the bearer token the daemon requires (or $FERRY_TOKEN); for start, the token to require' },
  json: { type: 'boolean', help: "print the API's JSON, one document (for jq)" },
  help: { type: 'boolean', help: 'help on ferry or on a command' },
  version: { type: 'boolean', help: 'the version' },
} as const;

const START: Command = {
  path: ['start'],
  synopsis:
    'ferry start --setup FILE [--data-dir DIR] [--host 127.0.0.1] [--port 3862] [--token T] [--cors ORIGIN] [--log-level info] [--inspect]',
  summary: 'Run the daemon in the foreground; SIGINT or SIGTERM stop it. An invalid setup exits 2.',
  options: {
    setup: { type: 'string', help: 'the setup file (JSON: entries and rules)' },
    'data-dir': { type: 'string', help: 'where the store lives (default: .ferry/ beside the setup file)' },
    host: { type: 'string', help: 'address the API binds (default 127.0.0.1; any other needs --token)' },
    port: { type: 'string', help: 'port of the API (default 3862; 0 picks a free one)' },
    'log-level': { type: 'string', help: `${LEVELS.join(', ')} (default info)` },
    cors: { type: 'string', help: 'the one browser origin allowed to call the API (default: none)' },
    inspect: { type: 'boolean', help: 'log every XState inspection event, at debug level (implies --log-level debug)' },
  },
  minArgs: 0,
  maxArgs: 0,
  run: async () => EXIT.ok,
};

const ALL: Command[] = [START, ...commands];

const EXIT_CODES = `Exit codes:
  0  done
  1  the daemon refused (its reason is printed on stderr), or the daemon failed
  2  bad usage, an invalid setup file, or (start) a data dir or port another ferry uses
  3  the daemon is unreachable (the URL tried is printed)
  4  timed out waiting`;

function optionLines(options: Record<string, { type: string; help: string }>): string {
  const rows = Object.entries(options).map(([name, o]) => [`--${name}${o.type === 'string' ? ' VALUE' : ''}`, o.help]);
  const width = Math.max(...rows.map(([n]) => n.length));
  return rows.map(([n, h]) => `  ${n.padEnd(width)}  ${h}`).join('\n');
}

function help(command?: Command): string {
  if (command) {
    const own = command.options ? `\nOptions:\n${optionLines(command.options)}\n` : '';
    return `Usage: ${command.synopsis}\n\n${command.summary}\n${own}\nGlobal options:\n${optionLines(GLOBAL_OPTIONS)}\n\n${EXIT_CODES}\n`;
  }
  const lines = ALL.map((c) => `  ${c.synopsis}\n      ${c.summary}`);
  return `Usage: ferry [--api URL] [--json] COMMAND [ARGS]

Ferry keeps files in sync between entries according to rules. "ferry start" runs the daemon;
every other command is a client of a running daemon's REST API.

Commands:
${lines.join('\n')}

Global options:
${optionLines(GLOBAL_OPTIONS)}

"ferry COMMAND --help" tells more of one command.

${EXIT_CODES}
`;
}

async function main(argv: string[]): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { ...GLOBAL_OPTIONS };
  for (const c of ALL) Object.assign(options, c.options ?? {});
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (err) {
    const message = (err as Error).message;
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    throw usage(unknown ? `unknown option ${unknown[1]}` : message.split('. ')[0]);
  }
  const { values, positionals } = parsed;
  if (values.version) {
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
  if (values.help) {
    process.stdout.write(help(command));
    return EXIT.ok;
  }
  const name = `ferry ${command.path.join(' ')}`;
  for (const key of Object.keys(values)) {
    if (!(key in GLOBAL_OPTIONS) && !(command.options && key in command.options)) {
      throw usage(`${name} takes no --${key}`);
    }
  }
  const args = positionals.slice(command.path.length);
  if (args.length < command.minArgs) throw usage(`missing argument: ${command.synopsis}`);
  if (args.length > command.maxArgs) {
    // "ferry entries frobnicate A" reads better as an unknown command than as an extra argument.
    const known = ALL.some((c) => c.path.length > command.path.length && c.path.slice(0, -1).join(' ') === command.path.join(' '));
    throw usage(known && command.maxArgs === 0 ? `unknown command: ${positionals.join(' ')}` : `too many arguments: ${command.synopsis}`);
  }
  if (command === START) {
    await start(values);
    return -1; // keeps running
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
      if (err.code === EXIT.usage) process.stderr.write("Try 'ferry --help'.\n");
      process.exitCode = err.code;
      return;
    }
    process.stderr.write(`ferry: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
