import fs from 'node:fs';
import path from 'node:path';
import { IGNORE_FILE, IgnoreRules, patternsOfFile, samePatterns } from '../../ignore-rules.js';

/**
 * The ignore patterns a local root applies: the setup's, then its `.ferryignore` file's, read
 * again when it changes. Its watcher and its transfers ask it before reporting or writing a path.
 */
export class LocalIgnore {
  private rules: IgnoreRules | null = null;
  private current: string[] = [];
  private loaded = false;

  constructor(
    private readonly root: string,
    private readonly setup: readonly string[],
  ) {}

  /** The patterns in force: the setup's, then the file's. */
  get patterns(): string[] {
    return this.current;
  }

  /** Reads `.ferryignore` (again); true when the patterns in force changed. */
  load(): boolean {
    let text = '';
    try {
      text = fs.readFileSync(path.join(this.root, IGNORE_FILE), 'utf8');
    } catch {
      // none: the setup's patterns alone
    }
    const next = [...this.setup, ...patternsOfFile(text)];
    if (this.loaded && samePatterns(next, this.current)) return false;
    this.loaded = true;
    this.current = next;
    this.rules = IgnoreRules.of(next);
    return true;
  }

  /** Whether any pattern is in force. */
  get any(): boolean {
    return this.rules !== null;
  }

  ignores(rel: string, folder = false): boolean {
    return this.rules !== null && this.rules.ignores(rel, folder);
  }
}
