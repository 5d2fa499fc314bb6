// The registry's small lists (sites, buildings, rooms, types) for filters and forms.
import { useCallback, useEffect, useState } from "react";
import { api, type Building, type DeviceType, type Items, type Room, type Site } from "../api";

export type { Building, DeviceType, Gateway, Room, Site } from "../api";

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
      api<Items<Site>>("GET", "/sites"),
      api<Items<Building>>("GET", "/buildings"),
      api<Items<Room>>("GET", "/rooms"),
      api<Items<DeviceType>>("GET", "/device-types"),
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
