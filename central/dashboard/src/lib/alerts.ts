// Alerts: which ones are new since the last poll (they pop up), and grouping by building.
import type { Alert } from "../api";

/** Open alerts not in `seen` (alert ids already shown), oldest first. */
export function newAlerts(alerts: Alert[], seen: ReadonlySet<number>): Alert[] {
  return alerts.filter((a) => a.state === "open" && !seen.has(a.id)).sort((a, b) => a.id - b.id);
}

/** Alerts by building id (`""` for none), buildings in first-opened order. */
export function groupByBuilding(alerts: Alert[]): [string, Alert[]][] {
  const groups = new Map<string, Alert[]>();
  for (const a of [...alerts].sort((x, y) => x.opened_at - y.opened_at)) {
    const key = a.building ?? "";
    const list = groups.get(key) ?? [];
    list.push(a);
    groups.set(key, list);
  }
  return [...groups.entries()];
}

/** One line saying what an alert is about. */
/** The alert's kind, as a heading. */
export function alertKindLabel(a: Alert): string {
  switch (a.kind) {
    case "outage":
      return "Outage";
    case "failure":
      return "Failure";
    case "foreign_delivery":
      return "Security";
    case "forwarder_silent":
      return "LoRaWAN";
    case "reboot_loop":
      return "Reboot loop";
    case "site_disconnected":
      return "Site disconnected";
  }
}

export function alertTitle(a: Alert, buildingName: (id: string | null) => string): string {
  if (a.kind === "foreign_delivery") {
    return a.detail ?? "first password delivered outside the device networks";
  }
  if (a.kind === "forwarder_silent") {
    return a.detail ?? `packet forwarder ${a.forwarder ?? "?"} silent`;
  }
  if (a.kind === "site_disconnected") {
    return a.detail ?? "a gateway in local-broker mode is out of touch";
  }
  if (a.kind === "reboot_loop") {
    return `a device keeps rebooting: ${a.detail ?? ""}`;
  }
  if (a.kind === "outage") {
    return `${buildingName(a.building)}: ${a.outdated} of ${a.total_devices} device${a.total_devices === 1 ? "" : "s"} outdated`;
  }
  return `${buildingName(a.building)}: ${a.rule ?? "rule"} — ${a.detail ?? ""}`;
}

export function isSilenced(a: Alert, now: number): boolean {
  return (a.ack?.silenced_until ?? 0) > now;
}
