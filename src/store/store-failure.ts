/**
 * The reason to show when `err` is the store failing to write (a full disk, an I/O error, a
 * read-only or locked database), or null when it is anything else.
 */
export function storeFailure(err: unknown): string | null {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return null;
  const message = (err as Error).message;
  if (code.startsWith('SQLITE_FULL')) return `the store's disk is full: ${message}`;
  if (code.startsWith('SQLITE_IOERR')) return `the store's disk failed: ${message}`;
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_BUSY')) {
    return `the store cannot be written: ${message}`;
  }
  return null;
}
