import type { FastifyPluginAsync } from 'fastify';
import type { AnyActorRef } from 'xstate';
import type { ApiContext } from '../app.js';
import type { EntryContext } from '../../../machines/entry.js';
import { statePath } from '../../observe/mermaid.js';

type Sample = [labels: Record<string, string>, value: number];

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function family(name: string, type: 'gauge' | 'counter', help: string, samples: Sample[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${escape(v)}"`)
      .join(',');
    lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
  }
  return lines.join('\n');
}

const STATES = ['stopped', 'active', 'restarting'];

/** `GET /metrics`: Prometheus text exposition format 0.0.4. */
export const metricsRoutes: FastifyPluginAsync<ApiContext> = async (app, ctx) => {
  app.get('/metrics', async (_request, reply) => {
    const names = [...ctx.entries.keys()];
    const entries = names.map((name) => {
      const s = (ctx.system.get(`entry:${name}`) as AnyActorRef).getSnapshot();
      return { name, state: statePath(s.value)[0], context: s.context as EntryContext, counters: ctx.board.count(name) };
    });
    const workerMemory: Sample[] = [];
    const workerCpu: Sample[] = [];
    for (const e of entries) {
      const sample = e.context.sample;
      if (!sample) continue;
      workerMemory.push([{ entry: e.name }, sample.rss]);
      workerCpu.push([{ entry: e.name }, sample.cpuSeconds]);
    }
    const usage = process.cpuUsage();
    const memory = process.memoryUsage();
    const body = [
      family('ferry_entries', 'gauge', 'Entries by state.', STATES.map((state) => [{ state }, entries.filter((e) => e.state === state).length])),
      family('ferry_entry_up', 'gauge', 'Whether the entry is active (1) or not (0).', entries.map((e) => [{ entry: e.name }, e.state === 'active' ? 1 : 0])),
      family('ferry_entry_restarts_total', 'counter', 'Unexpected worker exits since the daemon started.', entries.map((e) => [{ entry: e.name }, e.context.restarts])),
      family('ferry_files_tracked', 'gauge', 'Files in the catalogue.', [[{}, ctx.store.countFiles()]]),
      family('ferry_transferred_files_total', 'counter', 'Files copied into the entry.', entries.map((e) => [{ entry: e.name }, e.counters.filesTransferred])),
      family('ferry_transferred_bytes_total', 'counter', 'Bytes copied into the entry.', entries.map((e) => [{ entry: e.name }, e.counters.bytesTransferred])),
      family('ferry_deleted_files_total', 'counter', 'Files deleted in the entry to follow a deletion elsewhere.', entries.map((e) => [{ entry: e.name }, e.counters.deleted])),
      family('ferry_moved_files_total', 'counter', 'Files renamed in the entry to follow a rename elsewhere.', entries.map((e) => [{ entry: e.name }, e.counters.moved])),
      family('ferry_transfer_errors_total', 'counter', 'Jobs that failed and were queued again.', entries.map((e) => [{ entry: e.name }, e.counters.errors])),
      family('ferry_queue_length', 'gauge', 'Jobs queued or running for the entry.', entries.map((e) => [{ entry: e.name }, ctx.store.countJobs(e.name)])),
      family('ferry_watched_folders', 'gauge', "Folders the entry's watcher watches (one inotify watch each).", entries.filter((e) => e.context.watch).map((e) => [{ entry: e.name }, e.context.watch!.watched])),
      family('ferry_polled_folders', 'gauge', 'Folders the kernel refused to watch, rescanned every poll_interval instead.', entries.filter((e) => e.context.watch).map((e) => [{ entry: e.name }, e.context.watch!.polled])),
      family('ferry_entry_connected', 'gauge', 'Whether a remote entry reaches its server (1) or not (0).', entries.filter((e) => e.context.connection).map((e) => [{ entry: e.name, endpoint: e.context.connection!.endpoint }, e.context.connection!.connected ? 1 : 0])),
      family('ferry_worker_resident_memory_bytes', 'gauge', "Resident memory of the entry's worker process.", workerMemory),
      family('ferry_worker_cpu_seconds_total', 'counter', "CPU time of the entry's worker process.", workerCpu),
      family('process_cpu_user_seconds_total', 'counter', 'User CPU time of the daemon.', [[{}, usage.user / 1e6]]),
      family('process_cpu_system_seconds_total', 'counter', 'System CPU time of the daemon.', [[{}, usage.system / 1e6]]),
      family('process_resident_memory_bytes', 'gauge', 'Resident memory of the daemon.', [[{}, memory.rss]]),
      family('process_heap_used_bytes', 'gauge', 'V8 heap used by the daemon.', [[{}, memory.heapUsed]]),
      family('process_start_time_seconds', 'gauge', 'Start time of the daemon, epoch seconds.', [[{}, Math.round(Date.now() / 1000 - process.uptime())]]),
    ].join('\n');
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return body + '\n';
  });
};
