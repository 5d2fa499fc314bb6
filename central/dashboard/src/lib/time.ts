// "3 min ago" for people; the exact time stays in the element's title.

const UNITS: [number, string][] = [
  [86_400_000, "d"],
  [3_600_000, "h"],
  [60_000, "min"],
  [1_000, "s"],
];

/** How long before `now` the time `at` (ISO text or ms) was, in the largest fitting unit. */
export function relativeTime(at: string | number | null | undefined, now: number): string {
  if (at === null || at === undefined) return "never";
  const t = typeof at === "number" ? at : Date.parse(at);
  if (Number.isNaN(t)) return "unknown";
  const delta = now - t;
  if (delta < 0) return delta > -5_000 ? "just now" : "in the future";
  if (delta < 5_000) return "just now";
  for (const [ms, unit] of UNITS) {
    if (delta >= ms) return `${Math.floor(delta / ms)} ${unit} ago`;
  }
  return "just now";
}

/** Local date and time, to the second. */
export function absoluteTime(at: string | number | null | undefined): string {
  if (at === null || at === undefined) return "";
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
}
