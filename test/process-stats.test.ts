import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import pidusage from 'pidusage';
import { cpuTime, humanSize, processInfo, virtualMemory } from '../src/process-stats.js';

afterAll(() => {
  pidusage.clear();
});

describe('humanSize', () => {
  it('shows bytes in short units', () => {
    expect(humanSize(0)).toBe('0B');
    expect(humanSize(512)).toBe('512B');
    expect(humanSize(1023)).toBe('1023B');
    expect(humanSize(1024)).toBe('1K');
    expect(humanSize(1024 * 1024 - 100)).toBe('1M');
    expect(humanSize(1536)).toBe('1.5K');
    expect(humanSize(10 * 1024)).toBe('10K');
    expect(humanSize(18 * 1024 ** 2)).toBe('18M');
    expect(humanSize(707 * 1024 ** 2 + 300 * 1024)).toBe('707M');
    expect(humanSize(1.5 * 1024 ** 3)).toBe('1.5G');
    expect(humanSize(2 * 1024 ** 4)).toBe('2T');
  });

  it('stops at the largest unit', () => {
    expect(humanSize(3 * 1024 ** 6)).toBe('3072P');
  });
});

describe('cpuTime', () => {
  it("shows milliseconds as 'M:SS.ss'", () => {
    expect(cpuTime(0)).toBe('0:00.00');
    expect(cpuTime(1234)).toBe('0:01.23');
    expect(cpuTime(9_990)).toBe('0:09.99');
    expect(cpuTime(61_500)).toBe('1:01.50');
    expect(cpuTime(600_000)).toBe('10:00.00');
    expect(cpuTime(3_723_450)).toBe('62:03.45');
  });

  it('never shows 60 seconds', () => {
    expect(cpuTime(59_999)).toBe('1:00.00');
    expect(cpuTime(119_996)).toBe('2:00.00');
    expect(cpuTime(59_994)).toBe('0:59.99');
  });
});

describe('virtualMemory', () => {
  it("reads a process's virtual size in bytes", async () => {
    const vms = await virtualMemory(process.pid);
    expect(Number.isInteger(vms)).toBe(true);
    expect(vms).toBeGreaterThan(0);
    // Virtual memory covers the resident memory, and is what /proc/PID/status calls VmSize.
    expect(vms).toBeGreaterThanOrEqual(process.memoryUsage().rss);
    const vmSizeKb = Number(/VmSize:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${process.pid}/status`, 'utf8'))![1]);
    expect(Math.abs(vms - vmSizeKb * 1024)).toBeLessThan(vmSizeKb * 1024 * 0.1);
  });

  it('fails for a process that does not exist', async () => {
    await expect(virtualMemory(2 ** 30)).rejects.toThrow(/ENOENT/);
  });
});

describe('processInfo', () => {
  it('reports every field', async () => {
    const startedAt = Date.now() - 5000;
    const info = await processInfo(process.pid, startedAt);
    expect(Object.keys(info).sort()).toEqual(
      ['age', 'cpu', 'create_time', 'ctime', 'mem', 'mem_info1', 'mem_info2', 'pid', 'started'].sort(),
    );
    expect(info.pid).toBe(process.pid);
    expect(info.started).toBe(startedAt / 1000);
    expect(info.age).toBeGreaterThan(0);
    expect(info.cpu).toBeGreaterThanOrEqual(0);
    // The process started about `uptime` seconds ago.
    const created = Date.now() / 1000 - process.uptime();
    expect(Math.abs(info.create_time - created)).toBeLessThan(5);
    expect(info.ctime).toMatch(/^\d+:[0-5]\d\.\d\d$/);
    expect(info.mem).toBeGreaterThan(0);
    expect(info.mem).toBeLessThanOrEqual(100);
    expect(info.mem_info1).toMatch(/^\d+(\.\d)?[BKMGTP]$/);
    expect(info.mem_info2).toMatch(/^\d+(\.\d)?[BKMGTP]$/);
    expect(info.mem_info2).not.toBe('0B');
  });

  it('fails for a process that does not exist', async () => {
    await expect(processInfo(2 ** 30, Date.now())).rejects.toThrow();
  });
});
