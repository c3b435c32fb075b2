/** Timing helpers for refreshes: nothing here knows about the DOM or the API. */

/** Calls `fn` once calls have stopped for `ms`. */
export function debounce(fn: () => unknown, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  return () => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void fn();
    }, ms);
  };
}

/**
 * Runs `fn` at once if it has not run for `ms`, else once `ms` after its last start: at most
 * once per `ms`, the last call never lost, and never twice at once (a call while it runs
 * asks for one more run after it). `ms` may be a function: the gap is then asked each time.
 */
export function throttle(fn: () => unknown, ms: number | (() => number)): () => void {
  const gap = typeof ms === 'number' ? () => ms : ms;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let running = false;
  let again = false;
  let lastStart = -Infinity;
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    lastStart = Date.now();
    try {
      await fn();
    } catch (err) {
      console.warn('ferry dashboard:', err);
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (running) {
      again = true;
      return;
    }
    if (timer === null) timer = setTimeout(() => void run(), Math.max(0, lastStart + gap() - Date.now()));
  };
  return schedule;
}
