// New alerts pop up wherever the operator is: polled every 5 s, shown until dismissed,
// announced to screen readers. Alerts open when the page loads are not popped up again.
import { useEffect, useRef, useState } from "react";
import { api, type Alert } from "../api";
import { alertKindLabel, alertTitle, newAlerts } from "../lib/alerts";
import { useBuildingNames } from "./names";
import { hrefOf } from "../lib/router";

export function Toasts() {
  const [toasts, setToasts] = useState<Alert[]>([]);
  const seen = useRef<Set<number> | null>(null);
  const names = useBuildingNames();

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout>;
    const poll = async () => {
      try {
        const { items } = await api<{ items: Alert[] }>("GET", "/alerts");
        if (stopped) return;
        if (seen.current === null) {
          seen.current = new Set(items.map((a) => a.id));
        } else {
          const fresh = newAlerts(items, seen.current);
          fresh.forEach((a) => seen.current!.add(a.id));
          if (fresh.length) setToasts((t) => [...t, ...fresh].slice(-5));
        }
      } catch {
        // The pages show connection errors; toasts just try again.
      }
      if (!stopped) timer = setTimeout(poll, 5_000);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  return (
    <div className="toasts" role="status" aria-live="polite">
      {toasts.map((a) => (
        <div key={a.id} className={`toast ${a.kind}`}>
          <strong>{alertKindLabel(a)}</strong> {alertTitle(a, names)}
          <span className="toast-actions">
            <a href={hrefOf(["alerts"])}>See alerts</a>
            <button type="button" className="link" onClick={() => setToasts((t) => t.filter((x) => x.id !== a.id))} aria-label={`Dismiss alert ${a.id}`}>
              Dismiss
            </button>
          </span>
        </div>
      ))}
    </div>
  );
}
