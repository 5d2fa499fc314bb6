// Names of buildings for alerts and tables, loaded once per page view.
import { useEffect, useState } from "react";
import { api } from "../api";

interface Named {
  id: string;
  name: string;
}

let cache: Promise<Map<string, string>> | null = null;

export function loadBuildingNames(force = false): Promise<Map<string, string>> {
  if (!cache || force) {
    cache = api<{ items: Named[] }>("GET", "/buildings")
      .then(({ items }) => new Map(items.map((b) => [b.id, b.name])))
      .catch(() => new Map());
  }
  return cache;
}

export function useBuildingNames(): (id: string | null) => string {
  const [names, setNames] = useState<Map<string, string>>(new Map());
  useEffect(() => {
    void loadBuildingNames().then(setNames);
  }, []);
  return (id) => (id ? (names.get(id) ?? "building") : "no building");
}
