// Live data without full reloads: poll, and skip the transfer when the ETag still matches.
// Polling pauses while the tab is hidden and resumes at once when it is shown again.
import { useCallback, useEffect, useRef, useState } from "react";
import { api, getIfChanged } from "../api";

export function usePolled<T>(path: string | null, intervalMs: number, withEtag = false) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const etag = useRef<string | null>(null);
  const [tick, setTick] = useState(0);
  const refresh = useCallback(() => setTick((t) => t + 1), []);

  useEffect(() => {
    etag.current = null;
    setData(null);
  }, [path]);

  useEffect(() => {
    if (!path) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      if (document.visibilityState === "hidden") {
        timer = setTimeout(load, intervalMs);
        return;
      }
      try {
        if (withEtag) {
          const result = await getIfChanged<T>(path, etag.current);
          if (!stopped && result) {
            etag.current = result.etag;
            setData(result.data);
          }
        } else {
          const result = await api<T>("GET", path);
          if (!stopped) setData(result);
        }
        if (!stopped) setError(null);
      } catch (e) {
        if (!stopped) setError(e instanceof Error ? e.message : String(e));
      }
      if (!stopped) timer = setTimeout(load, intervalMs);
    };
    const onVisible = () => {
      if (document.visibilityState === "visible") {
        clearTimeout(timer);
        void load();
      }
    };
    document.addEventListener("visibilitychange", onVisible);
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [path, intervalMs, withEtag, tick]);

  return { data, error, refresh };
}

/** The current time, updated every `ms` (for "3 min ago" texts). */
export function useNow(ms = 5_000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}
