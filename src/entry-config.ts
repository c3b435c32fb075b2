import type { VersionPolicy } from './versions/policy.js';

/** One configured entry, as the setup file gives it. */
export interface EntryConfig {
  name: string;
  driver: string;
  /** Options as written in the setup file, a secret written inline masked ("***"): what the API shows. */
  options: Record<string, unknown>;
  /** Options with paths resolved (given to the worker). */
  resolved: Record<string, unknown>;
  /** The setup's ignore patterns for this entry: the top-level ones, then its own. */
  ignore?: string[];
  /** What it keeps of the content syncs overwrite or delete (null: "off"; absent: nothing). */
  versions?: VersionPolicy | null;
  /** The local folder the entry keeps (null: a remote entry); set by the setup. */
  folder?: string | null;
}
