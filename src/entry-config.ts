/** One configured entry, as the setup file gives it. */
export interface EntryConfig {
  name: string;
  driver: string;
  /** Options as written in the setup file (shown by the API). */
  options: Record<string, unknown>;
  /** Options with paths resolved (given to the worker). */
  resolved: Record<string, unknown>;
}
