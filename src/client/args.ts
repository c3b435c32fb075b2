import { closest } from '../did-you-mean.js';
import { usage } from './http.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  help: string;
  /** How the value reads in the help: `--limit N`. */
  value?: string;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * The command line as words and options, every fault said in Ferry's words (node's parseArgs
 * would answer `--limit -1` with its own advice about dashes). `--name value` and
 * `--name=value` for a string option, whatever the value looks like (`--limit -1` is -1, said
 * wrong by the command); `--name` for a boolean; `--` ends the options; `-` alone is a word.
 */
export function parseArgv(argv: readonly string[], options: Readonly<Record<string, OptionSpec>>): ParsedArgs {
  const values: ParsedArgs['values'] = {};
  const positionals: string[] = [];
  const known = Object.keys(options);
  const unknown = (given: string) => {
    const guess = closest(given.replace(/^-+/, ''), known);
    return usage(`unknown option ${given}${guess === undefined ? '' : ` (did you mean --${guess}?)`}`);
  };
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!word.startsWith('-') || word === '-') {
      positionals.push(word);
      continue;
    }
    if (!word.startsWith('--')) throw unknown(word);
    const eq = word.indexOf('=');
    const name = word.slice(2, eq < 0 ? undefined : eq);
    const spec = Object.hasOwn(options, name) ? options[name] : undefined;
    if (!spec) throw unknown(eq < 0 ? word : word.slice(0, eq));
    if (spec.type === 'boolean') {
      if (eq >= 0) throw usage(`--${name} takes no value (got ${word})`);
      values[name] = true;
      continue;
    }
    if (eq >= 0) {
      values[name] = word.slice(eq + 1);
      continue;
    }
    const next = argv[i + 1];
    // The next word is the value, unless there is none or it is another option of ours.
    if (next === undefined || (next.startsWith('--') && Object.hasOwn(options, next.slice(2).split('=')[0]!))) {
      throw usage(`--${name} needs a value: --${name} ${spec.value ?? 'VALUE'}`);
    }
    values[name] = next;
    i++;
  }
  return { values, positionals };
}

/** A whole number within [min, max], or a usage error naming the option and what was given. */
export function wholeNumber(option: string, text: string, min: number, max = Infinity): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (Number.isSafeInteger(n) && n >= min && n <= max) return n;
  const range = max === Infinity ? `${min} or more` : `from ${min} to ${max}`;
  throw usage(`--${option}: must be a whole number ${range} (got ${text})`);
}

/** One of a few words, or a usage error listing them. */
export function oneOf<T extends string>(option: string, text: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  const words = allowed.length === 2 ? allowed.join(' or ') : `${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}`;
  throw usage(`--${option}: must be ${words} (got ${text})`);
}
