// Colours of the overview: a tile shows its worst state (outdated beats never seen beats ok),
// and says it in words too, never by colour alone.
import type { Counts, DeviceState } from "../api";

export function totalOf(c: Counts): number {
  return c.ok + c.outdated + c.never_seen + c.disabled;
}

/** The state a tile is drawn in. `empty` when it holds no device. */
export function worstState(c: Counts): DeviceState | "empty" {
  if (c.outdated > 0) return "outdated";
  if (c.never_seen > 0) return "never_seen";
  if (c.ok > 0) return "ok";
  if (c.disabled > 0) return "disabled";
  return "empty";
}

export const STATE_LABEL: Record<DeviceState, string> = {
  ok: "ok",
  outdated: "outdated",
  never_seen: "never seen",
  disabled: "disabled",
};

/** "3 outdated, 1 never seen, 12 ok" — what a tile says to a screen reader. */
export function describe(c: Counts): string {
  const parts: string[] = [];
  if (c.outdated) parts.push(`${c.outdated} outdated`);
  if (c.never_seen) parts.push(`${c.never_seen} never seen`);
  if (c.ok) parts.push(`${c.ok} ok`);
  if (c.disabled) parts.push(`${c.disabled} disabled`);
  return parts.length ? parts.join(", ") : "no devices";
}
