#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import type { Level } from 'pino';
import { Daemon } from './daemon.js';
import { createLogger } from './logger.js';
import { SetupError } from './setup.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const USAGE = `Usage: ferry <command> [options]

Commands:
  start --setup FILE   run the daemon in the foreground (SIGINT or SIGTERM stop it)

Options of start:
  --setup FILE         the setup file (JSON: entries and rules)
  --data-dir DIR       where the store lives (default: .ferry/ beside the setup file)
  --host ADDRESS       address the API binds (default: 127.0.0.1)
  --port N             port of the API (default: 3862)
  --log-level LEVEL    trace, debug, info, warn, error, fatal or silent (default: info)

  --help               this help
  --version            the version

Exit codes: 0 done; 1 failed while running; 2 bad usage or invalid setup.`;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function usageError(message: string): never {
  process.stderr.write(`ferry: ${message}\nTry 'ferry --help'.\n`);
  process.exit(2);
}

async function start(args: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        setup: { type: 'string' },
        'data-dir': { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '3862' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (!values.setup) usageError('start needs --setup FILE');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) usageError(`--port: not a port number: ${values.port}`);
  if (!LEVELS.includes(values['log-level']!)) usageError(`--log-level: one of ${LEVELS.join(', ')}`);

  const logger = createLogger(values['log-level'] as Level);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      setupFile: values.setup,
      dataDir: values['data-dir'],
      host: values.host,
      port,
      logger,
    });
  } catch (err) {
    if (err instanceof SetupError) {
      process.stderr.write(`ferry: ${err.message}\n`);
      process.exit(2);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      process.stderr.write(`ferry: cannot listen on ${values.host}:${port}: ${(err as Error).message}\n`);
      process.exit(1);
    }
    process.stderr.write(`ferry: failed to start: ${(err as Error).message}\n`);
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

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case '--version':
    case '-v':
      process.stdout.write(`ferry ${version}\n`);
      return;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      usageError(`unknown command: ${command}`);
  }
}

void main(process.argv.slice(2));
