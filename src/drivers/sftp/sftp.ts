import type { DriverContext } from '../driver.js';
import type { ReaderFactory } from '../source-reader.js';
import { RemoteDriver } from '../remote/remote-driver.js';
import { REMOTE_DEFAULTS, warnInlineSecrets } from '../registry.js';
import { SftpBackend, type SftpOptions } from './sftp-backend.js';

/** An SFTP server's folder as an entry: ssh2, polled for changes. */
export default (ctx: DriverContext) => {
  warnInlineSecrets('sftp', ctx.options, ctx.log);
  const seconds = typeof ctx.options.poll_interval === 'number' ? ctx.options.poll_interval : REMOTE_DEFAULTS.poll_interval;
  return new RemoteDriver(ctx, new SftpBackend(ctx.options as unknown as SftpOptions), seconds * 1000);
};

/** The read side alone, for copies out of an SFTP entry into another: its own connection, kept. */
export const reader: ReaderFactory = (options) => new SftpBackend(options as unknown as SftpOptions);
