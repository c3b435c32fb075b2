/** How the dashboard writes numbers, sizes and times: plain functions, no DOM. */

/** 1203 → "1,203". */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** "1 file", "1,203 files". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${count(n)} ${n === 1 ? one : many}`;
}

/** Bytes in binary units, as people read them: 146 KB, 2.1 GB. */
export function bytes(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${i === 0 ? String(value) : value.toFixed(value < 10 ? 1 : 0)} ${units[i]}`;
}

/** A whole percentage, never 100 while something is left: 99.7 → 99. */
export function percent(done: number, total: number): number {
  if (total <= 0) return 100;
  const p = Math.floor((done / total) * 100);
  return Math.max(0, Math.min(done < total ? 99 : 100, p));
}

/** Seconds as "5s", "3m 07s", "2h 10m", "4d 1h". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec < 10 ? '0' : ''}${sec}s`;
  return `${sec}s`;
}

/** Local wall-clock time HH:MM:SS of epoch seconds (now without one). */
export function clock(epochSeconds?: number): string {
  const d = epochSeconds === undefined ? new Date() : new Date(epochSeconds * 1000);
  return d.toTimeString().slice(0, 8);
}

/** "256 MB / 1.0 GB · 25 % · 50 MB/s" */
export function progressFigures(done: number, size: number, rate?: number): string {
  const pct = size > 0 ? Math.min(100, Math.round((done / size) * 100)) : 0;
  return `${bytes(done)} / ${bytes(size)} · ${pct} %${rate !== undefined ? ` · ${bytes(rate)}/s` : ''}`;
}
