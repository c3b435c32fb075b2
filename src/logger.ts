import pino, { type Logger, type Level } from 'pino';

/** The daemon's one logger: JSON lines, or readable lines when stdout is a terminal. */
export function createLogger(level: Level | 'silent' = 'info', pretty = process.stdout.isTTY === true): Logger {
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, base: undefined });
}
