// One campaign: its waves with a progress bar each, its actions, the devices that failed or
// wait, and what happened.
import { useState } from "react";
import { api, type Campaign, type CampaignDevice, type StageCounts } from "../../api";
import { shares, total } from "../../lib/firmware";
import { hrefOf } from "../../lib/router";
import { absoluteTime, relativeTime } from "../../lib/time";

function Bar({ counts, label }: { counts: StageCounts; label: string }) {
  const s = shares(counts);
  return (
    <div
      className="progress"
      role="img"
      aria-label={`${label}: ${counts.done} done, ${counts.downloading} downloading, ${counts.failed} failed, ${counts.pending} pending`}
    >
      <span className="done" style={{ width: `${s.done}%` }} />
      <span className="downloading" style={{ width: `${s.downloading}%` }} />
      <span className="failed" style={{ width: `${s.failed}%` }} />
    </div>
  );
}

export function CampaignCard({
  campaign: c,
  operator,
  now,
  onChanged,
}: {
  campaign: Campaign;
  operator: boolean;
  now: number;
  onChanged: (message: string) => void;
}) {
  const [devices, setDevices] = useState<{ stage: string; items: CampaignDevice[]; total: number } | null>(null);
  const act = async (action: "advance" | "pause" | "resume" | "cancel" | "finish") => {
    try {
      await api("POST", `/campaigns/${c.id}/actions`, { action });
      onChanged(`Campaign “${c.name}”: ${action} done.`);
    } catch (e) {
      onChanged(`Campaign “${c.name}”: ${(e as Error).message}`);
    }
  };
  const show = async (stage: string) => {
    const page = await api<{ items: CampaignDevice[]; total: number }>("GET", `/campaigns/${c.id}/devices?stage=${stage}&limit=200`);
    setDevices({ stage, ...page });
  };
  const open = c.state === "running" || c.state === "paused" || c.state === "halted";
  const started = c.waves.filter((w) => w.started_at).length;
  return (
    <li className={`campaign ${c.state}`} aria-label={`Campaign ${c.name}`}>
      <h3>
        {c.name} <span className={`badge ${c.state}`}>{c.state}</span>
      </h3>
      <p className="meta">
        {c.devices} devices · image <code title={c.image}>{c.image.slice(0, 12)}</code> · halts above {c.failure_threshold_percent} % failed per wave
      </p>
      <Bar counts={c.progress} label="All started waves" />
      <p className="meta">
        {c.progress.done} done · {c.progress.downloading} downloading · {c.progress.failed} failed · {c.progress.pending} pending
        {" "}of {total(c.progress)} reached
      </p>
      <ol className="waves">
        {c.waves.map((w, i) => (
          <li key={i}>
            Wave {i + 1} (up to {w.until_percent} %, {w.devices} device{w.devices === 1 ? "" : "s"}){" "}
            {w.started_at ? (
              <span title={absoluteTime(w.started_at)}>started {relativeTime(w.started_at, now)}</span>
            ) : (
              <span className="meta">{w.soak_s && i > 0 ? "starts after the soak time" : "not started"}</span>
            )}
            {w.progress && <Bar counts={w.progress} label={`Wave ${i + 1}`} />}
          </li>
        ))}
      </ol>
      {operator && open && (
        <p className="actions">
          {c.state === "running" && started < c.waves.length && (
            <button type="button" onClick={() => act("advance")}>
              Start wave {started + 1}
            </button>
          )}
          {c.state === "running" && (
            <button type="button" className="secondary" onClick={() => act("pause")}>
              Pause
            </button>
          )}
          {c.state !== "running" && (
            <button type="button" onClick={() => act("resume")}>
              Resume
            </button>
          )}
          {started === c.waves.length && (
            <button type="button" className="secondary" onClick={() => act("finish")}>
              Finish
            </button>
          )}
          <button type="button" className="secondary" onClick={() => act("cancel")}>
            Cancel
          </button>
        </p>
      )}
      <p className="actions">
        <button type="button" className="link" onClick={() => show("failed")}>
          Failed devices
        </button>
        <button type="button" className="link" onClick={() => show("pending")}>
          Pending devices
        </button>
      </p>
      {devices && (
        <table aria-label={`${devices.stage} devices of ${c.name}`}>
          <caption>
            {devices.total} {devices.stage} devices{devices.total > devices.items.length ? ` (first ${devices.items.length})` : ""}
          </caption>
          <thead>
            <tr>
              <th>Device</th>
              <th>Wave</th>
              <th>Stage</th>
              <th>Reported</th>
            </tr>
          </thead>
          <tbody>
            {devices.items.map((d) => (
              <tr key={d.id}>
                <td>
                  <a href={hrefOf(["devices", d.uid ?? d.id])}>{d.uid ?? d.id}</a>
                </td>
                <td>{d.wave}</td>
                <td>{d.stage.replaceAll("_", " ")}</td>
                <td>{d.reported ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <details>
        <summary>History ({c.events.length})</summary>
        <ul className="events">
          {c.events.map((e, i) => (
            <li key={i}>
              <span title={absoluteTime(e.at)}>{relativeTime(e.at, now)}</span> — {e.by}: {e.what}
            </li>
          ))}
        </ul>
      </details>
    </li>
  );
}
