// A device's history: a chart of one numeric field of its statuses (heap, RSSI …) and its
// timeline — statuses, orders, changes, log lines, silences — newest first.
import { useState } from "react";
import { usePolled } from "../lib/hooks";
import { absoluteTime, relativeTime } from "../lib/time";
import { fieldSeries, numericFields, type Point } from "../lib/history";

type Event = { at: string; kind: string; summary: string; detail: unknown };

const W = 640;
const H = 160;

function Chart({ points, field }: { points: Point[]; field: string }) {
  const series = fieldSeries(points, field);
  if (series.length < 2) return <p>Not enough statuses with {field} to draw.</p>;
  const [t0, t1] = [series[0].t, series[series.length - 1].t];
  const lo = Math.min(...series.map((p) => p.v));
  const hi = Math.max(...series.map((p) => p.v));
  const x = (t: number) => ((t - t0) / Math.max(1, t1 - t0)) * (W - 20) + 10;
  const y = (v: number) => H - 10 - ((v - lo) / Math.max(1e-9, hi - lo)) * (H - 20);
  return (
    <figure>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${field} over time, ${series.length} statuses`} className="chart">
        <polyline fill="none" stroke="#2563eb" strokeWidth="2" points={series.map((p) => `${x(p.t)},${y(p.v)}`).join(" ")} />
      </svg>
      <figcaption>
        {field}: {lo} to {hi}, from {absoluteTime(t0)} to {absoluteTime(t1)}
      </figcaption>
    </figure>
  );
}

export function DeviceTimeline({ id, now }: { id: string; now: number }) {
  const key = encodeURIComponent(id);
  const history = usePolled<{ items: Point[] }>(`/devices/${key}/history?limit=2000`, 30_000);
  const timeline = usePolled<{ items: Event[] }>(`/devices/${key}/timeline?limit=100`, 10_000);
  const points = Array.isArray(history.data?.items) ? history.data.items : [];
  const events = Array.isArray(timeline.data?.items) ? timeline.data.items : [];
  const fields = numericFields(points);
  const [picked, setPicked] = useState<string | null>(null);
  const field = picked && fields.includes(picked) ? picked : fields[0];
  return (
    <article className="card timeline" aria-label="Timeline">
      <h2>History</h2>
      {fields.length > 0 && field && (
        <>
          <label>
            Field{" "}
            <select value={field} onChange={(e) => setPicked(e.target.value)}>
              {fields.map((f) => (
                <option key={f}>{f}</option>
              ))}
            </select>
          </label>
          <Chart points={points} field={field} />
        </>
      )}
      {timeline.error && <p className="error">Cannot load the timeline: {timeline.error}</p>}
      <ol className="events">
        {events.map((e, i) => (
          <li key={`${e.at}-${i}`} className={`event ${e.kind}`} data-kind={e.kind}>
            <span className="when" title={absoluteTime(e.at)}>{relativeTime(e.at, now)}</span>{" "}
            <span className="kind">{e.kind}</span> {e.summary}
          </li>
        ))}
        {timeline.data && events.length === 0 && <li>Nothing yet.</li>}
      </ol>
    </article>
  );
}
