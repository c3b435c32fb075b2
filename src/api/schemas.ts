/**
 * Every JSON schema of the API, in one module, and the TypeScript types derived from them. The
 * routes validate and serialize with these schemas, the OpenAPI description is built from them
 * (a schema with a `title` becomes `#/components/schemas/TITLE`), and the `ferry` client uses
 * the types. This module holds data only: the client loads it without Fastify.
 */
import type { FromSchema } from './json-schema.js';

/** Entry names, as the setup allows them. */
export const NAME_PATTERN = '^[A-Za-z0-9_.-]+$';

/** The most files one page of GET /files returns; a larger `limit` is capped to it. */
export const MAX_LIMIT = 1000;

const names = { type: 'array', items: { type: 'string' } } as const;

export const errorSchema = {
  title: 'Error',
  description: 'Every error: what was wrong, in words.',
  type: 'object',
  required: ['reason', 'status'],
  properties: { reason: { type: 'string' }, status: { type: 'string', const: 'error' } },
} as const;

export const okSchema = {
  title: 'Ok',
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', const: 'ok' } },
} as const;

const fileProperties = {
  fid: { type: 'string', description: 'UUID v5 of the filename in the namespace bcd336f2-d023-4856-bc92-e79dd24b64d7' },
  filename: { type: 'string', description: "The path relative to an entry's root, without a leading slash" },
  size: { type: 'integer', minimum: 0 },
  owners: { ...names, description: 'The entries that should hold the file' },
  uptodate: { ...names, description: 'The entries that hold its latest version (a subset of owners)' },
} as const;

export const fileSchema = {
  title: 'File',
  type: 'object',
  required: ['fid', 'filename', 'size', 'owners', 'uptodate'],
  properties: fileProperties,
} as const;

/** A file as GET /files lists it: with `reason` when asked for failing files. */
export const listedFileSchema = {
  title: 'ListedFile',
  type: 'object',
  required: ['fid', 'filename', 'size', 'owners', 'uptodate'],
  properties: {
    ...fileProperties,
    reason: { type: 'string', description: 'With ?failing=true only: the last error of the latest failing job for the file' },
  },
} as const;

export const filesSchema = {
  title: 'Files',
  type: 'object',
  required: ['files'],
  properties: { files: { type: 'array', items: listedFileSchema } },
} as const;

export const filesQuery = {
  type: 'object',
  properties: {
    offset: { type: 'integer', minimum: 0, default: 0, description: 'How many matching files to skip' },
    limit: { type: 'integer', minimum: 0, default: 20, description: `How many files at most (capped at ${MAX_LIMIT})` },
    pending: {
      type: 'string',
      pattern: NAME_PATTERN,
      description: 'Only the files this entry owns and does not hold in their latest version (404 for an unknown entry)',
    },
    failing: {
      type: 'boolean',
      description: 'true: only the files with a job that failed and is retried, each with its `reason`',
    },
    q: {
      type: 'string',
      minLength: 1,
      maxLength: 1024,
      description: 'Only the files whose filename contains this text, whatever the case',
    },
  },
  additionalProperties: false,
} as const;

export const fidParams = {
  type: 'object',
  required: ['fid'],
  properties: { fid: { type: 'string' } },
} as const;

export const entrySchema = {
  title: 'Entry',
  type: 'object',
  required: ['name', 'driver', 'options'],
  properties: {
    name: { type: 'string' },
    driver: { type: 'string' },
    options: { type: 'object', additionalProperties: true, description: 'As written in the setup file' },
    root_path: {
      type: 'string',
      description: 'The absolute folder the entry keeps, resolved from options.root (local_storage entries)',
    },
  },
} as const;

export const entriesSchema = {
  title: 'Entries',
  type: 'object',
  required: ['entries'],
  properties: { entries: { type: 'array', items: entrySchema } },
} as const;

export const ENTRY_STATES = ['active', 'stopped', 'restarting'] as const;

/** The answer of GET /entries/NAME/status. */
export const entryStatusSchema = {
  title: 'EntryStatus',
  type: 'object',
  required: ['name', 'status', 'time'],
  properties: {
    name: { type: 'string' },
    status: {
      type: 'string',
      enum: ENTRY_STATES,
      description: 'restarting: its worker died and is being restarted',
    },
    time: { type: 'number', description: 'Epoch seconds' },
    reason: { type: 'string', description: 'Only when there is one to give: why it stopped, or which jobs keep failing' },
  },
} as const;

/** The answer of start, stop, restart and rescan. */
export const entryActionSchema = {
  title: 'EntryAction',
  type: 'object',
  required: ['name', 'status', 'time'],
  properties: {
    name: { type: 'string' },
    status: { type: 'string', const: 'ok' },
    time: { type: 'number', description: 'Epoch seconds' },
  },
} as const;

export const processInfoSchema = {
  title: 'ProcessInfo',
  type: 'object',
  required: ['age', 'cpu', 'create_time', 'ctime', 'mem', 'mem_info1', 'mem_info2', 'started', 'pid', 'restarts'],
  properties: {
    age: { type: 'number', description: 'Seconds since the process started' },
    cpu: { type: 'number', description: 'CPU use, %' },
    create_time: { type: 'number', description: 'When the process was created, epoch seconds' },
    ctime: { type: 'string', description: 'CPU time used, M:SS.ss' },
    mem: { type: 'number', description: 'Resident memory, % of RAM' },
    mem_info1: { type: 'string', description: 'Resident memory (RSS), e.g. 18M' },
    mem_info2: { type: 'string', description: 'Virtual memory (VMS), e.g. 707M' },
    started: { type: 'number', description: 'When the entry started it, epoch seconds' },
    pid: { type: 'integer' },
    restarts: { type: 'integer', description: 'Unexpected worker exits since the daemon started' },
  },
} as const;

export const entryStatsSchema = {
  title: 'EntryStats',
  type: 'object',
  required: ['info', 'name', 'status', 'time'],
  properties: {
    info: processInfoSchema,
    name: { type: 'string' },
    status: { type: 'string', const: 'ok' },
    time: { type: 'number', description: 'Epoch seconds' },
    connection: {
      type: 'object',
      description: 'Beyond 1.0, remote entries (sftp, s3) only: whether the server is reached, and what was copied in',
      required: ['endpoint', 'connected', 'reason', 'bytes_transferred', 'files_transferred'],
      properties: {
        endpoint: { type: 'string', description: 'What is reached: sftp HOST:PORT, s3 BUCKET' },
        connected: { type: 'boolean' },
        reason: { type: ['string', 'null'], description: 'Why it is not reached, and when it is tried again' },
        bytes_transferred: { type: 'integer', description: 'Bytes copied into the entry since the daemon started' },
        files_transferred: { type: 'integer', description: 'Files copied into the entry since the daemon started' },
      },
    },
  },
} as const;

export const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string' } },
} as const;

export const startQuery = {
  type: 'object',
  properties: {
    force: {
      type: 'boolean',
      default: false,
      description: 'Apply what a start refuses: mass deletions found by a rescan or caused by a rules reload',
    },
  },
} as const;

export const ruleSchema = {
  title: 'Rule',
  type: 'object',
  required: ['match'],
  properties: {
    match: {
      type: 'object',
      required: ['path'],
      properties: {
        path: { type: 'string', description: 'A prefix of "/" + filename, on segment boundaries' },
        mime: { ...names, description: 'MIME types looked up from the name; image/* allowed' },
      },
    },
    sync: { ...names, description: 'Entries this rule adds to the owners' },
    ban: { ...names, description: 'Entries this rule removes from the owners' },
  },
} as const;

/** `{"rules": [...]}`: the body of PUT /rules and the answer of GET /rules. */
export const rulesSchema = {
  title: 'Rules',
  type: 'object',
  required: ['rules'],
  properties: { rules: { type: 'array', items: ruleSchema } },
} as const;

export const ownersChangeSchema = {
  title: 'OwnersChange',
  type: 'object',
  required: ['fid', 'filename', 'gain', 'lose'],
  properties: {
    fid: { type: 'string' },
    filename: { type: 'string' },
    gain: { ...names, description: 'Entries that would become owners' },
    lose: { ...names, description: 'Entries that would stop being owners' },
  },
} as const;

export const rulesDiffSchema = {
  title: 'RulesDiff',
  type: 'object',
  required: ['changes'],
  properties: { changes: { type: 'array', items: ownersChangeSchema } },
} as const;

export const conflictSchema = {
  title: 'Conflict',
  type: 'object',
  required: ['fid', 'filename', 'original', 'entry', 'time', 'size', 'owners', 'uptodate'],
  properties: {
    fid: { type: 'string' },
    filename: { type: 'string', description: 'The conflict copy' },
    original: { type: 'string', description: 'The file it was a version of' },
    entry: { type: 'string', description: 'The entry whose version it keeps' },
    time: { type: 'number', description: 'When it was kept, epoch seconds' },
    size: { type: 'integer', minimum: 0 },
    owners: names,
    uptodate: names,
  },
} as const;

export const conflictsSchema = {
  title: 'Conflicts',
  type: 'object',
  required: ['conflicts'],
  properties: { conflicts: { type: 'array', items: conflictSchema } },
} as const;

export const runningTransferSchema = {
  title: 'RunningTransfer',
  type: 'object',
  required: ['id', 'kind', 'filename', 'source', 'bytes', 'size', 'rate', 'started'],
  properties: {
    id: { type: 'integer' },
    kind: { type: 'string', enum: ['upload', 'delete', 'move'] },
    filename: { type: 'string' },
    source: { type: ['string', 'null'], description: 'The entry the bytes come from (uploads)' },
    bytes: { type: 'integer', description: 'Bytes copied so far' },
    size: { type: 'integer' },
    rate: { type: 'integer', description: 'Bytes per second since it started' },
    started: { type: 'number', description: 'Epoch seconds' },
  },
} as const;

export const queuedJobSchema = {
  title: 'QueuedJob',
  type: 'object',
  required: ['id', 'kind', 'filename', 'size', 'attempts', 'notBefore', 'lastError'],
  properties: {
    id: { type: 'integer' },
    kind: { type: 'string', enum: ['upload', 'delete', 'move'] },
    filename: { type: 'string' },
    size: { type: 'integer' },
    attempts: { type: 'integer' },
    notBefore: { type: 'integer', description: 'Not retried before this time, epoch milliseconds' },
    lastError: { type: ['string', 'null'] },
  },
} as const;

export const transfersSchema = {
  title: 'Transfers',
  type: 'object',
  required: ['entries'],
  properties: {
    entries: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'queued', 'running', 'waiting'],
        properties: {
          name: { type: 'string' },
          queued: { type: 'integer', description: 'Jobs queued (not running)' },
          running: { type: 'array', items: runningTransferSchema },
          waiting: { type: 'array', items: queuedJobSchema, description: 'The first 100 queued jobs' },
        },
      },
    },
  },
} as const;

/** A state value of XState: a state's name, or an object of its children's. */
const stateValue = {
  oneOf: [{ type: 'string' }, { type: 'object', additionalProperties: true }],
} as const;

export const rulesActorSchema = {
  title: 'RulesActor',
  type: 'object',
  required: ['id', 'machine', 'state', 'path', 'context'],
  properties: {
    id: { type: 'string', const: 'rules' },
    machine: { type: 'string', const: 'rules' },
    state: stateValue,
    path: { ...names, description: 'The state as a path of names, outermost first' },
    context: {
      type: 'object',
      required: ['staged', 'active', 'lastError'],
      additionalProperties: true,
      properties: {
        staged: { type: 'integer', description: 'Staged rules' },
        active: { type: 'integer', description: 'Rules in force' },
        lastError: { type: ['string', 'null'] },
      },
    },
  },
} as const;

export const entryActorSchema = {
  title: 'EntryActor',
  type: 'object',
  required: ['id', 'machine', 'entry', 'state', 'path', 'context'],
  properties: {
    id: { type: 'string', description: 'entry:NAME' },
    machine: { type: 'string', const: 'entry' },
    entry: { type: 'string' },
    state: stateValue,
    path: { ...names, description: 'The state as a path of names, outermost first' },
    context: {
      type: 'object',
      required: ['queue', 'restarts', 'failures', 'lastError', 'pid', 'watch'],
      additionalProperties: true,
      properties: {
        queue: { type: 'integer', description: 'Jobs queued or running' },
        restarts: { type: 'integer' },
        failures: { type: 'integer', description: 'Worker exits in a row (the back-off)' },
        lastError: { type: ['string', 'null'] },
        pid: { type: ['integer', 'null'] },
        watch: {
          type: ['object', 'null'],
          required: ['folders', 'watched', 'polled'],
          properties: {
            folders: { type: 'integer' },
            watched: { type: 'integer', description: 'Folders with an inotify watch' },
            polled: { type: 'integer', description: 'Folders rescanned every poll_interval instead' },
          },
        },
      },
    },
  },
} as const;

export const machinesSchema = {
  title: 'Machines',
  type: 'object',
  required: ['machines', 'mermaid', 'actors'],
  properties: {
    machines: {
      type: 'object',
      required: ['entry', 'rules'],
      description: "Each machine's definition, as XState's machine.toJSON()",
      properties: {
        entry: { type: 'object', additionalProperties: true },
        rules: { type: 'object', additionalProperties: true },
      },
    },
    mermaid: {
      type: 'object',
      required: ['entry', 'rules'],
      description: 'Each machine as a mermaid state diagram',
      properties: { entry: { type: 'string' }, rules: { type: 'string' } },
    },
    actors: { type: 'array', items: { oneOf: [rulesActorSchema, entryActorSchema] } },
  },
} as const;

export const eventsQuery = {
  type: 'object',
  properties: {
    since: { type: 'integer', minimum: 0, description: 'Resume after this event id (as Last-Event-ID does)' },
  },
} as const;

/** The schemas the OpenAPI description names under components/schemas, each by its title. */
export const NAMED_SCHEMAS = [
  errorSchema,
  okSchema,
  fileSchema,
  listedFileSchema,
  filesSchema,
  entrySchema,
  entriesSchema,
  entryStatusSchema,
  entryActionSchema,
  processInfoSchema,
  entryStatsSchema,
  ruleSchema,
  rulesSchema,
  ownersChangeSchema,
  rulesDiffSchema,
  conflictSchema,
  conflictsSchema,
  runningTransferSchema,
  queuedJobSchema,
  transfersSchema,
  rulesActorSchema,
  entryActorSchema,
  machinesSchema,
] as const;

export type ErrorBody = FromSchema<typeof errorSchema>;
export type Ok = FromSchema<typeof okSchema>;
export type File = FromSchema<typeof fileSchema>;
export type ListedFile = FromSchema<typeof listedFileSchema>;
export type Files = FromSchema<typeof filesSchema>;
export type FilesQuery = FromSchema<typeof filesQuery>;
export type Entry = FromSchema<typeof entrySchema>;
export type Entries = FromSchema<typeof entriesSchema>;
export type EntryState = (typeof ENTRY_STATES)[number];
export type EntryStatus = FromSchema<typeof entryStatusSchema>;
export type EntryAction = FromSchema<typeof entryActionSchema>;
export type ProcessInfo = FromSchema<typeof processInfoSchema>;
export type EntryStats = FromSchema<typeof entryStatsSchema>;
export type Rule = FromSchema<typeof ruleSchema>;
export type Rules = FromSchema<typeof rulesSchema>;
export type OwnersChange = FromSchema<typeof ownersChangeSchema>;
export type RulesDiff = FromSchema<typeof rulesDiffSchema>;
export type Conflict = FromSchema<typeof conflictSchema>;
export type Conflicts = FromSchema<typeof conflictsSchema>;
export type Transfers = FromSchema<typeof transfersSchema>;
export type Machines = FromSchema<typeof machinesSchema>;
