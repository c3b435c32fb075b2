import { createRequire } from 'node:module';
import pino, { type Logger, type Level } from 'pino';

/**
 * The daemon's one logger: JSON lines, or readable lines when stdout is a terminal. The daemon's
 * bundle carries pino (scripts/build-daemon.mjs), which spares its start some thirty files to
 * read; the readable lines come through pino-pretty in a worker thread, which loads files of
 * pino's by path, so that logger is made by pino as installed.
 */
export function createLogger(level: Level | 'silent' = 'info', pretty = process.stdout.isTTY === true): Logger {
  if (pretty) {
    const installed = createRequire(import.meta.url)('pino') as typeof pino;
    return installed({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, base: undefined });
}
