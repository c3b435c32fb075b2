/** One configured entry, as the setup file gives it. */
export interface EntryConfig {
  name: string;
  driver: string;
  /** Options as written in the setup file, a secret written inline masked ("***"): what the API shows. */
  options: Record<string, unknown>;
  /** Options with paths resolved (given to the worker). */
  resolved: Record<string, unknown>;
  /** The local folder the entry keeps (null: a remote entry); set by the setup. */
  folder?: string | null;
}
