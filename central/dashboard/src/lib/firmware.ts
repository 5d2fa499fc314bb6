// Pure helpers of the Firmware page: wave plans, progress shares, revision series.
import type { RevisionCount, StageCounts } from "../api";

/** "1, 10, 100" → waves; `null` when it is not increasing percentages ending at 100. */
export function parseWaves(text: string): { until_percent: number }[] | null {
  const parts = text.split(/[,\s]+/).filter(Boolean).map(Number);
  if (parts.length === 0 || parts.length > 10) return null;
  let previous = 0;
  for (const p of parts) {
    if (!Number.isInteger(p) || p <= previous || p > 100) return null;
    previous = p;
  }
  return previous === 100 ? parts.map((p) => ({ until_percent: p })) : null;
}

/** Devices of a wave or a campaign in all stages. */
export function total(c: StageCounts): number {
  return c.pending + c.downloading + c.done + c.failed;
}

/** The share (0–100) of each stage, for a progress bar. */
export function shares(c: StageCounts): { done: number; downloading: number; failed: number; pending: number } {
  const n = total(c) || 1;
  return {
    done: (100 * c.done) / n,
    downloading: (100 * c.downloading) / n,
    failed: (100 * c.failed) / n,
    pending: (100 * c.pending) / n,
  };
}

/** `hardware/board` groups of a census, sorted. */
export function boards(rows: RevisionCount[]): string[] {
  return [...new Set(rows.map((r) => `${r.hardware}/${r.board}`))].sort();
}

/** For one `hardware/board`: each revision's device count at each sample time. */
export function series(
  history: { at: string; counts: RevisionCount[] }[],
  board: string,
): { revisions: number[]; points: { at: number; counts: Map<number, number> }[] } {
  const revisions = new Set<number>();
  const points = history.map((h) => {
    const counts = new Map<number, number>();
    for (const r of h.counts) {
      if (`${r.hardware}/${r.board}` !== board) continue;
      counts.set(r.revision, r.devices);
      revisions.add(r.revision);
    }
    return { at: Date.parse(h.at), counts };
  });
  return { revisions: [...revisions].sort((a, b) => a - b), points };
}

/** Bytes for people. */
export function size(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(0)} KiB`;
  return `${bytes} B`;
}
