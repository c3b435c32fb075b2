import type { DriverContext } from '../driver.js';
import type { ReaderFactory } from '../source-reader.js';
import { RemoteDriver } from '../remote/remote-driver.js';
import { REMOTE_DEFAULTS, warnInlineSecrets } from '../registry.js';
import { S3Backend, type S3Options } from './s3-backend.js';

/** A bucket (under a prefix) as an entry: the AWS SDK, polled for changes. */
export default (ctx: DriverContext) => {
  warnInlineSecrets('s3', ctx.options, ctx.log);
  const seconds = typeof ctx.options.poll_interval === 'number' ? ctx.options.poll_interval : REMOTE_DEFAULTS.poll_interval;
  return new RemoteDriver(ctx, new S3Backend(ctx.options as unknown as S3Options), seconds * 1000);
};

/** The read side alone, for copies out of an S3 entry into another: GetObject with a Range. */
export const reader: ReaderFactory = (options) => new S3Backend(options as unknown as S3Options);
