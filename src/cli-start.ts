import type { Level } from 'pino';
import { Daemon, UsageError } from './daemon.js';
import { createLogger } from './logger.js';
import { SetupError } from './setup.js';
import type { SpareWorkers } from './worker-fork.js';

/**
 * `ferry start`: the daemon in the foreground. Only this module loads the daemon (SQLite,
 * Fastify, XState…); the CLI imports it for `start` alone, so client commands start fast.
 * Its options are checked by the CLI before it is loaded.
 */
export async function runDaemon(options: {
  setupFile: string;
  dataDir?: string;
  host: string;
  port: number;
  level: Level | 'silent';
  inspect: boolean;
  token?: string;
  cors?: string;
  /** Workers forked ahead for the entries (see worker-fork.ts). */
  spares?: SpareWorkers;
}): Promise<void> {
  const { host, port } = options;
  const logger = createLogger(options.level);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      setupFile: options.setupFile,
      dataDir: options.dataDir,
      host,
      port,
      logger,
      inspect: options.inspect,
      token: options.token,
      cors: options.cors,
      spares: options.spares,
    });
  } catch (err) {
    options.spares?.release();
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
  // Said once a SIGTERM would stop it cleanly: a script that stops the daemon as soon as it reads
  // this line never kills it half-way.
  daemon.announce();
}
