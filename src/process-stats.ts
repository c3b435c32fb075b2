import fs from 'node:fs/promises';
import os from 'node:os';
import pidusage from 'pidusage';

/** The `info` object of GET /entries/NAME/stats, as the original reported it through psutil. */
export interface ProcessInfo {
  age: number;
  cpu: number;
  create_time: number;
  ctime: string;
  mem: number;
  mem_info1: string;
  mem_info2: string;
  started: number;
  pid: number;
}

/** Bytes as a short human size: `512B`, `18M`, `707M`, `1.5G`. */
export function humanSize(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let value = bytes;
  let unit = 0;
  // 1023.6K rounds to 1024K: shown as 1M instead.
  while (Math.round(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit > 0 && value < 10 ? value.toFixed(1).replace(/\.0$/, '') : String(Math.round(value));
  return `${shown}${units[unit]}`;
}

/** CPU time in milliseconds as `M:SS.ss`, as ps shows it. */
export function cpuTime(ms: number): string {
  // Rounded to hundredths first, so that 59.999 s shows as 1:00.00, never as 0:60.00.
  const centis = Math.round(ms / 10);
  const minutes = Math.floor(centis / 6000);
  const seconds = (centis - minutes * 6000) / 100;
  return `${minutes}:${seconds.toFixed(2).padStart(5, '0')}`;
}

/** Virtual memory size of a process in bytes: field 23 of /proc/PID/stat. */
export async function virtualMemory(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command start at field 3 (state): field 23 is at index 20.
  return Number(fields[20]);
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/** A sample of a process: the API's `info`, and the raw figures /metrics exports. */
export interface ProcessSample {
  info: ProcessInfo;
  /** Resident memory, bytes. */
  rss: number;
  /** CPU time used so far, seconds. */
  cpuSeconds: number;
}

/**
 * pidusage learns the clock tick and the page size at its first call, from two `getconf`
 * processes started through a shell, and each call made before that one has returned asks
 * again: two entries sampled as they start made four shells and four `getconf` while the first
 * copies ran. The first call goes alone.
 */
let firstCall: Promise<unknown> | null = null;

async function usageOf(pid: number): Promise<pidusage.Status> {
  if (firstCall === null) {
    const call = pidusage(pid);
    firstCall = call.catch(() => undefined);
    return call;
  }
  await firstCall;
  return pidusage(pid);
}

export async function processSample(pid: number, startedAt: number): Promise<ProcessSample> {
  const usage = await usageOf(pid);
  const vms = await virtualMemory(pid).catch(() => 0);
  return { info: toInfo(pid, startedAt, usage, vms), rss: usage.memory, cpuSeconds: usage.ctime / 1000 };
}

export async function processInfo(pid: number, startedAt: number): Promise<ProcessInfo> {
  return (await processSample(pid, startedAt)).info;
}

function toInfo(pid: number, startedAt: number, usage: pidusage.Status, vms: number): ProcessInfo {
  return {
    age: usage.elapsed / 1000,
    cpu: round(usage.cpu, 1),
    create_time: round((usage.timestamp - usage.elapsed) / 1000, 2),
    ctime: cpuTime(usage.ctime),
    mem: round((usage.memory / os.totalmem()) * 100, 1),
    mem_info1: humanSize(usage.memory),
    mem_info2: humanSize(vms),
    started: startedAt / 1000,
    pid,
  };
}
