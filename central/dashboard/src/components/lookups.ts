// The registry's small lists (sites, buildings, rooms, types) for filters and forms.
import { useCallback, useEffect, useState } from "react";
import { api } from "../api";

export interface Site { id: string; slug: string; name: string; is_default: boolean }
export interface Building { id: string; site: string; name: string; description: string; outside: boolean }
export interface Room { id: string; building: string; site: string | null; name: string; description: string; base_topic: string | null; devices: number }
export interface DeviceType {
  id: string;
  name: string;
  description: string;
  config_schema: unknown;
  status_period_s: number;
  outdated_after_s: number;
  orders: string[];
  status_rules: unknown[];
}
export interface Gateway { id: string; name: string; scope: unknown; devices: number; created_at: string; enrolled_at: string | null; mqtt_username: string }

export interface Lookups {
  sites: Site[];
  buildings: Building[];
  rooms: Room[];
  types: DeviceType[];
}

const EMPTY: Lookups = { sites: [], buildings: [], rooms: [], types: [] };

export function useLookups(): Lookups & { reload: () => void } {
  const [data, setData] = useState<Lookups>(EMPTY);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let stopped = false;
    Promise.all([
      api<{ items: Site[] }>("GET", "/sites"),
      api<{ items: Building[] }>("GET", "/buildings"),
      api<{ items: Room[] }>("GET", "/rooms"),
      api<{ items: DeviceType[] }>("GET", "/device-types"),
    ])
      .then(([s, b, r, t]) => {
        if (!stopped) setData({ sites: s.items, buildings: b.items, rooms: r.items, types: t.items });
      })
      .catch(() => {});
    return () => {
      stopped = true;
    };
  }, [tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...data, reload };
}

export function roomLabel(l: Lookups, roomId: string): string {
  const room = l.rooms.find((r) => r.id === roomId);
  if (!room) return "";
  const building = l.buildings.find((b) => b.id === room.building);
  return building ? `${building.name} / ${room.name}` : room.name;
}
