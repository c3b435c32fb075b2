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
  | { type: 'progress'; entry: string; job: number; path: string; bytes: number; size: number }
  /** An actor failed; the daemon started it again. */
  | { type: 'actor'; actor: string; error: string };

export type LoggedEvent = FerryEvent & { id: number; time: number };

/**
 * The daemon's recent events, numbered from 1 in order. A bounded backlog is kept so that a
 * client that lost its connection resumes after the last id it saw without missing any.
 */
export class EventLog {
  /**
   * The backlog as a ring: `ring[head]` is the oldest event once it is full. An event in costs
   * the same however long the backlog is (an array's shift moved all 10,000 every time).
   */
  private readonly ring: LoggedEvent[] = [];
  private head = 0;
  private readonly listeners = new Set<(event: LoggedEvent) => void>();
  private next = 1;

  constructor(readonly capacity = 10_000) {}

  emit(event: FerryEvent): LoggedEvent {
    const logged = { ...event, id: this.next++, time: Date.now() / 1000 } as LoggedEvent;
    if (this.ring.length < this.capacity) {
      this.ring.push(logged);
    } else {
      this.ring[this.head] = logged;
      this.head = (this.head + 1) % this.capacity;
    }
    for (const listener of this.listeners) listener(logged);
    return logged;
  }

  /** The id of the newest event (0 before any). */
  get lastId(): number {
    return this.next - 1;
  }

  /** The oldest id still in the backlog (`lastId + 1` when it is empty). */
  get firstId(): number {
    return this.ring.length === 0 ? this.next : this.ring[this.head].id;
  }

  /** Events after `id`, oldest first. */
  since(id: number): LoggedEvent[] {
    const length = this.ring.length;
    if (length === 0 || id >= this.lastId) return [];
    const out: LoggedEvent[] = [];
    for (let i = Math.max(0, id - this.firstId + 1); i < length; i++) out.push(this.ring[(this.head + i) % length]);
    return out;
  }

  subscribe(listener: (event: LoggedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
