// Open alerts grouped by building, with acknowledgement and silencing (operators); resolved
// ones on request.
import { useState } from "react";
import { api, type Alert } from "../api";
import { usePolled, useNow } from "../lib/hooks";
import { alertKindLabel, alertTitle, groupByBuilding, isSilenced } from "../lib/alerts";
import { absoluteTime, relativeTime } from "../lib/time";
import { useBuildingNames } from "../components/names";
import { can, useSession } from "../session";
import { hrefOf } from "../lib/router";

export function Alerts() {
  const [all, setAll] = useState(false);
  const { data, error, refresh } = usePolled<{ items: Alert[] }>(`/alerts${all ? "?state=all" : ""}`, 5_000);
  const names = useBuildingNames();
  const now = useNow();
  const operator = can(useSession(), "operator");
  const [message, setMessage] = useState<string | null>(null);

  const ack = async (a: Alert, silenceMinutes?: number) => {
    try {
      await api("POST", `/alerts/${a.id}/ack`, silenceMinutes ? { silence_minutes: silenceMinutes } : {});
      setMessage(silenceMinutes ? `Alert ${a.id} silenced for ${silenceMinutes} min.` : `Alert ${a.id} acknowledged.`);
      refresh();
    } catch (e) {
      setMessage(`Alert ${a.id}: ${(e as Error).message}`);
    }
  };

  const groups = groupByBuilding(data?.items ?? []);
  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">Alerts</h1>
      <label className="check">
        <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> Show resolved alerts too
      </label>
      {error && <p className="error" role="alert">Cannot load alerts: {error}</p>}
      {message && <p role="status">{message}</p>}
      {data && groups.length === 0 && <p className="ok-text">No open alert.</p>}
      {groups.map(([building, alerts]) => (
        <section key={building} className="alert-group" aria-label={names(building || null)}>
          <h2>{names(building || null)}</h2>
          <ul className="alerts">
            {alerts.map((a) => (
              <li key={a.id} className={`alert ${a.kind} ${a.state}`}>
                <p>
                  <strong>{a.state === "open" ? alertKindLabel(a) : "Resolved"}</strong> {alertTitle(a, names)}
                </p>
                <p className="meta">
                  opened <span title={absoluteTime(a.opened_at)}>{relativeTime(a.opened_at, now)}</span>
                  {a.resolved_at && <> · resolved {relativeTime(a.resolved_at, now)}</>}
                  {a.ack && <> · acknowledged by {a.ack.by}</>}
                  {isSilenced(a, now) && <> · silenced until {absoluteTime(a.ack!.silenced_until!)}</>}
                  {a.device && (
                    <>
                      {" "}
                      · <a href={hrefOf(["devices", a.device])}>device</a>
                    </>
                  )}
                  {a.kind === "outage" && building && (
                    <>
                      {" "}
                      · <a href={hrefOf(["devices"], { building, state: "outdated" })}>outdated devices</a>
                    </>
                  )}
                </p>
                {operator && a.state === "open" && (
                  <p className="actions">
                    <button type="button" onClick={() => ack(a)} disabled={!!a.ack}>
                      Acknowledge
                    </button>
                    <button type="button" className="secondary" onClick={() => ack(a, 60)}>
                      Silence 1 h
                    </button>
                    <button type="button" className="secondary" onClick={() => ack(a, 24 * 60)}>
                      Silence 1 day
                    </button>
                  </p>
                )}
              </li>
            ))}
          </ul>
        </section>
      ))}
    </section>
  );
}
