/** What the event stream carries. */
export type FerryEvent =
  | { type: 'transition'; actor: string; entry: string | null; from: unknown; to: unknown; event: string }
  | {
      type: 'file';
      kind: 'changed' | 'transferred' | 'deleted' | 'moved' | 'conflict';
      entry: string;
      path: string;
      /** For a move: the old path. */
      from?: string;
      /** For a conflict: the name the entry's conflicting copy was kept under. */
      conflict?: string;
    }
  | { type: 'progress'; entry: string; job: number; path: string; bytes: number; size: number };

export type LoggedEvent = FerryEvent & { id: number; time: number };

/**
 * The daemon's recent events, numbered from 1 in order. A bounded backlog is kept so that a
 * client that lost its connection resumes after the last id it saw without missing any.
 */
export class EventLog {
  private readonly backlog: LoggedEvent[] = [];
  private readonly listeners = new Set<(event: LoggedEvent) => void>();
  private next = 1;

  constructor(readonly capacity = 10_000) {}

  emit(event: FerryEvent): LoggedEvent {
    const logged = { ...event, id: this.next++, time: Date.now() / 1000 } as LoggedEvent;
    this.backlog.push(logged);
    if (this.backlog.length > this.capacity) this.backlog.splice(0, this.backlog.length - this.capacity);
    for (const listener of this.listeners) listener(logged);
    return logged;
  }

  /** The id of the newest event (0 before any). */
  get lastId(): number {
    return this.next - 1;
  }

  /** The oldest id still in the backlog (`lastId + 1` when it is empty). */
  get firstId(): number {
    return this.backlog[0]?.id ?? this.next;
  }

  /** Events after `id`, oldest first. */
  since(id: number): LoggedEvent[] {
    if (this.backlog.length === 0 || id >= this.lastId) return [];
    const start = Math.max(0, id - this.backlog[0].id + 1);
    return this.backlog.slice(start);
  }

  subscribe(listener: (event: LoggedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
