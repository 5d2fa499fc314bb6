import { describe, expect, it } from "vitest";
import { formatValue, getPath, isValidPath, leafPaths } from "./jsonPath";
import { addStatusColumn, moveColumn, parseColumns, toggleBuiltin, DEFAULT_COLUMNS } from "./columns";
import { relativeTime } from "./time";
import { describe as describeCounts, worstState } from "./fleet";
import { alertKindLabel, alertTitle, groupByBuilding, newAlerts } from "./alerts";
import { parseUid } from "./uid";
import { hrefOf, parseHash } from "./router";
import type { Alert } from "../api";

const STATUS = { heap: 171204, firmware: 231027, modules: [{ name: "temperature" }, { name: "noise" }], wifi: { rssi: -61 }, ok: true, n: null };

describe("JSON paths into status payloads", () => {
  it("reads nested keys and array indexes", () => {
    expect(getPath(STATUS, "heap")).toBe(171204);
    expect(getPath(STATUS, "wifi.rssi")).toBe(-61);
    expect(getPath(STATUS, "modules.1.name")).toBe("noise");
    expect(getPath(STATUS, "n")).toBeNull();
  });
  it("is undefined for missing steps, wrong kinds and prototype keys", () => {
    expect(getPath(STATUS, "nothing")).toBeUndefined();
    expect(getPath(STATUS, "modules.x")).toBeUndefined();
    expect(getPath(STATUS, "modules.7.name")).toBeUndefined();
    expect(getPath(STATUS, "heap.low")).toBeUndefined();
    expect(getPath(STATUS, "constructor")).toBeUndefined();
    expect(getPath(null, "heap")).toBeUndefined();
    expect(getPath("text", "length")).toBeUndefined();
  });
  it("validates paths", () => {
    expect(isValidPath("modules.0.name")).toBe(true);
    for (const bad of ["", ".heap", "heap.", "a..b", "a b", "a/b"]) expect(isValidPath(bad)).toBe(false);
  });
  it("formats cells and lists leaves", () => {
    expect(formatValue(undefined)).toBe("—");
    expect(formatValue(12)).toBe("12");
    expect(formatValue({ a: 1 })).toBe('{"a":1}');
    expect(formatValue("x".repeat(100), 10)).toHaveLength(10);
    expect(leafPaths(STATUS)).toEqual(["heap", "firmware", "modules.0.name", "modules.1.name", "wifi.rssi", "ok", "n"]);
  });
});

describe("device table columns", () => {
  it("keeps valid saved columns once each, defaults otherwise", () => {
    expect(parseColumns(["uid", "status:heap", "uid", "bogus", "status:a b", 3])).toEqual(["uid", "status:heap"]);
    expect(parseColumns("garbage")).toEqual(DEFAULT_COLUMNS);
    expect(parseColumns([])).toEqual(DEFAULT_COLUMNS);
  });
  it("adds status columns with clear refusals", () => {
    expect(addStatusColumn(["uid"], " heap ")).toEqual(["uid", "status:heap"]);
    expect(addStatusColumn(["uid", "status:heap"], "heap")).toMatch(/shown already/);
    expect(addStatusColumn(["uid"], "a..b")).toMatch(/dotted path/);
  });
  it("toggles and moves, never leaving the table empty", () => {
    expect(toggleBuiltin(["uid"], "uid")).toEqual(["uid"]);
    expect(toggleBuiltin(["uid"], "type")).toEqual(["uid", "type"]);
    expect(moveColumn(["uid", "type", "state"], "state", -1)).toEqual(["uid", "state", "type"]);
    expect(moveColumn(["uid", "type"], "uid", -1)).toEqual(["uid", "type"]);
  });
});

describe("relative times", () => {
  const now = Date.parse("2026-11-24T12:00:00Z");
  it("says how long ago", () => {
    expect(relativeTime(null, now)).toBe("never");
    expect(relativeTime("2026-11-24T11:59:58Z", now)).toBe("just now");
    expect(relativeTime("2026-11-24T11:59:30Z", now)).toBe("30 s ago");
    expect(relativeTime("2026-11-24T11:57:00Z", now)).toBe("3 min ago");
    expect(relativeTime(now - 2 * 3_600_000, now)).toBe("2 h ago");
    expect(relativeTime(now - 3 * 86_400_000, now)).toBe("3 d ago");
    expect(relativeTime("not a date", now)).toBe("unknown");
    expect(relativeTime(now + 60_000, now)).toBe("in the future");
  });
});

describe("fleet tiles", () => {
  it("show the worst state and say it in words", () => {
    expect(worstState({ ok: 3, outdated: 1, never_seen: 2, disabled: 0 })).toBe("outdated");
    expect(worstState({ ok: 3, outdated: 0, never_seen: 2, disabled: 0 })).toBe("never_seen");
    expect(worstState({ ok: 0, outdated: 0, never_seen: 0, disabled: 0 })).toBe("empty");
    expect(describeCounts({ ok: 3, outdated: 1, never_seen: 0, disabled: 0 })).toBe("1 outdated, 3 ok");
  });
});

function alert(id: number, building: string | null, state: "open" | "resolved" = "open"): Alert {
  return { id, kind: "outage", building, device: null, rule: null, gateway: null, forwarder: null, detail: null, outdated: 1, total_devices: 2, opened_at: id * 1000, resolved_at: null, ack: null, devices: [], state };
}

describe("alerts", () => {
  it("pops up open alerts not seen before, oldest first", () => {
    expect(newAlerts([alert(3, "a"), alert(1, "a"), alert(2, "b", "resolved")], new Set([1])).map((a) => a.id)).toEqual([3]);
  });
  it("groups by building", () => {
    const groups = groupByBuilding([alert(2, "b"), alert(1, "a"), alert(3, "a"), alert(4, null)]);
    expect(groups.map(([b, list]) => [b, list.map((a) => a.id)])).toEqual([["a", [1, 3]], ["b", [2]], ["", [4]]]);
  });
  it("shows a foreign delivery as a security alert with its detail", () => {
    const a = { ...alert(5, null), kind: "foreign_delivery" as const, detail: "first password of 02:00:00:00:00:01 delivered to 8.8.8.8" };
    expect(alertKindLabel(a)).toBe("Security");
    expect(alertTitle(a, () => "?")).toBe(a.detail);
  });
  it("shows a silent packet forwarder as a LoRaWAN alert", () => {
    const a = { ...alert(6, null), kind: "forwarder_silent" as const, gateway: "g1", forwarder: "aa555a0000000101", detail: null };
    expect(alertKindLabel(a)).toBe("LoRaWAN");
    expect(alertTitle(a, () => "?")).toBe("packet forwarder aa555a0000000101 silent");
  });
  it("names a reboot loop", () => {
    const a = { ...alert(7, null), kind: "reboot_loop" as const, detail: "5 boots within 30 min" };
    expect(alertKindLabel(a)).toBe("Reboot loop");
    expect(alertTitle(a, () => "?")).toBe("a device keeps rebooting: 5 boots within 30 min");
  });
  it("names a site gone quiet with its gateway's detail", () => {
    const a = { ...alert(8, null), kind: "site_disconnected" as const, rule: "g1", detail: "gateway gw-carca (local broker) out of touch since 2026-12-06T10:00:00Z" };
    expect(alertKindLabel(a)).toBe("Site disconnected");
    expect(alertTitle(a, () => "?")).toBe(a.detail);
  });
});

describe("device uids", () => {
  it("accepts MACs and DevEUIs in the usual spellings", () => {
    expect(parseUid("24:0A:C4:12:34:56")).toEqual({ uid: "24:0a:c4:12:34:56", kind: "ethernet" });
    expect(parseUid("240ac4-123456")).toEqual({ uid: "24:0a:c4:12:34:56", kind: "ethernet" });
    expect(parseUid("70b3d57ed0000001")).toEqual({ uid: "70B3D57ED0000001", kind: "deveui" });
  });
  it("refuses the rest with a reason", () => {
    expect(parseUid("")).toHaveProperty("error");
    expect(parseUid("24:0a:c4:12:34")).toEqual({ error: "a MAC has 12 hex digits and a DevEUI 16; this has 10" });
    expect(parseUid("zz:0a:c4:12:34:56")).toHaveProperty("error");
  });
});

describe("hash routes", () => {
  it("round-trip paths and parameters", () => {
    const href = hrefOf(["devices", "24:0a:c4:12:34:56"], { state: "outdated", q: undefined });
    expect(href).toBe("#/devices/24%3A0a%3Ac4%3A12%3A34%3A56?state=outdated");
    const r = parseHash(href);
    expect(r.path).toEqual(["devices", "24:0a:c4:12:34:56"]);
    expect(r.params.get("state")).toBe("outdated");
    expect(parseHash("").path).toEqual([]);
  });
});

import { parseWaves, shares, series, boards, size } from "./firmware";
import { actorLabel, auditQuery, changeValue } from "./audit";

describe("firmware helpers", () => {
  it("reads cumulative waves ending at 100", () => {
    expect(parseWaves("1, 10, 100")).toEqual([{ until_percent: 1 }, { until_percent: 10 }, { until_percent: 100 }]);
    expect(parseWaves("100")).toEqual([{ until_percent: 100 }]);
    for (const bad of ["", "10, 5, 100", "10, 90", "0, 100", "1.5, 100", "x", "1,2,3,4,5,6,7,8,9,10,100"]) {
      expect(parseWaves(bad)).toBeNull();
    }
  });
  it("splits a bar by stage and draws revisions per board", () => {
    expect(shares({ pending: 1, downloading: 1, done: 2, failed: 0 })).toEqual({ done: 50, downloading: 25, failed: 0, pending: 25 });
    expect(shares({ pending: 0, downloading: 0, done: 0, failed: 0 }).done).toBe(0);
    const rows = (rev: number, n: number) => [{ hardware: "esp32", board: "neOSensor", revision: rev, devices: n }];
    const history = [
      { at: "2026-12-01T00:00:00Z", counts: rows(231027, 10) },
      { at: "2026-12-01T01:00:00Z", counts: [...rows(231027, 4), ...rows(240101, 6), { hardware: "esp8266", board: "x", revision: 1, devices: 1 }] },
    ];
    expect(boards(history.flatMap((h) => h.counts))).toEqual(["esp32/neOSensor", "esp8266/x"]);
    const s = series(history, "esp32/neOSensor");
    expect(s.revisions).toEqual([231027, 240101]);
    expect(s.points[1].counts.get(240101)).toBe(6);
    expect(s.points[0].counts.has(240101)).toBe(false);
    expect(size(1536 * 1024)).toBe("1.5 MiB");
  });
});

describe("audit", () => {
  it("puts only the filters that are set in the query, with the page start", () => {
    expect(auditQuery({ action: " device. ", actor: "", target: "" }, null)).toBe("/audit?action=device.&limit=50");
    expect(auditQuery({ action: "", actor: "alice", target: "24:0A" }, 120, 10)).toBe(
      "/audit?actor=alice&target=24%3A0A&limit=10&before=120",
    );
  });
  it("shows values short, absent ones as a dash", () => {
    expect(changeValue(null)).toBe("—");
    expect(changeValue(false)).toBe("false");
    expect(changeValue("(secret)")).toBe("(secret)");
    expect(changeValue("x".repeat(300)).length).toBe(120);
  });
  it("names users plainly and other actors by kind", () => {
    const entry = (kind: string, name: string) =>
      ({ actor: { kind, name } }) as unknown as Parameters<typeof actorLabel>[0];
    expect(actorLabel(entry("user", "alice"))).toBe("alice");
    expect(actorLabel(entry("device", "24:0A:C4:12:34:56"))).toBe("device 24:0A:C4:12:34:56");
  });
});

import { fieldSeries, numericFields } from "./history";

describe("device history", () => {
  const points = [
    { at: "2026-12-05T10:30:00Z", payload: { status: "running", heap: 170000, frequency: 1800 } },
    { at: "2026-12-05T10:00:00Z", payload: { status: "running", heap: 171204, frequency: 1800 } },
    { at: "2026-12-05T09:30:00Z", payload: { status: "starting", heap: 180000 } },
    { at: "bad", payload: "not an object" },
  ];
  it("finds the numeric fields, those that vary first", () => {
    expect(numericFields(points)).toEqual(["heap", "frequency"]);
    const flat = [{ at: "x", payload: { board_rev: 1.2, heap: 1 } }, { at: "y", payload: { board_rev: 1.2, heap: 2 } }];
    expect(numericFields(flat)).toEqual(["heap", "board_rev"]);
  });
  it("orders a field's values oldest first, skipping statuses without it", () => {
    expect(fieldSeries(points, "frequency").map((p) => p.v)).toEqual([1800, 1800]);
    expect(fieldSeries(points, "heap")[0].v).toBe(180000);
  });
});
