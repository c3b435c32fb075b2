import { fromCallback } from 'xstate';
import type { EntryEvent, SamplerInput } from '../machines/entry.js';
import { processSample } from './process-stats.js';

/** How often a running worker is sampled. */
export const SAMPLE_EVERY_MS = 2000;
/** The first CPU figure needs a sample before it: the second comes this soon after the first. */
const SECOND_SAMPLE_MS = 500;

/**
 * The `sampler` actor of a running entry: samples its worker process (pidusage: CPU over the
 * interval since the last sample, memory; /proc: virtual memory) and sends each sample back, so
 * that the API answers stats from the entry's snapshot and `cpu` is a real percentage.
 */
export function samplerActor() {
  return fromCallback<EntryEvent, SamplerInput>(({ input, sendBack }) => {
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    const tick = async (first: boolean) => {
      const sample = await processSample(input.pid, input.startedAt).catch(() => null);
      if (stopped) return;
      // A first sample's cpu is 0 (pidusage has nothing to compare with): the second, soon
      // after, has a real one.
      if (sample) sendBack({ type: 'worker.sampled', sample });
      timer = setTimeout(() => void tick(false), first ? SECOND_SAMPLE_MS : SAMPLE_EVERY_MS);
      timer.unref();
    };
    void tick(true);
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  });
}
