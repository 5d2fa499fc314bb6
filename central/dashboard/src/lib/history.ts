// Helpers of the device timeline: the numeric fields of statuses and their series.

export type Point = { at: string; payload: unknown };

/** Top-level numeric fields found in the statuses: those that vary most first (a chart of
 * `heap` says more than one of `board_rev`), then the most frequent, then by name. */
export function numericFields(points: Point[]): string[] {
  const values = new Map<string, { n: number; distinct: Set<number> }>();
  for (const p of points) {
    if (p.payload && typeof p.payload === "object" && !Array.isArray(p.payload)) {
      for (const [k, v] of Object.entries(p.payload as Record<string, unknown>)) {
        if (typeof v === "number" && Number.isFinite(v)) {
          const seen = values.get(k) ?? { n: 0, distinct: new Set<number>() };
          seen.n += 1;
          seen.distinct.add(v);
          values.set(k, seen);
        }
      }
    }
  }
  return [...values.entries()]
    .sort((a, b) => b[1].distinct.size - a[1].distinct.size || b[1].n - a[1].n || a[0].localeCompare(b[0]))
    .map(([k]) => k);
}

/** The field's values over time, oldest first (statuses without it are skipped). */
export function fieldSeries(points: Point[], field: string): { t: number; v: number }[] {
  return points
    .map((p) => ({ t: Date.parse(p.at), v: (p.payload as Record<string, unknown> | null)?.[field] }))
    .filter((p): p is { t: number; v: number } => typeof p.v === "number" && Number.isFinite(p.v) && !Number.isNaN(p.t))
    .sort((a, b) => a.t - b.t);
}
