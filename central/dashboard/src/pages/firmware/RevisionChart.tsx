// The fleet's firmware revisions of one hardware/board over time: one line per revision (SVG,
// no chart library), with the counts of now in a table beside it.
import { useMemo, useState } from "react";
import type { Revisions } from "../../api";
import { boards, series } from "../../lib/firmware";

const W = 640;
const H = 180;
const COLORS = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2"];

export function RevisionChart({ data }: { data: Revisions }) {
  const groups = useMemo(() => boards([...data.now, ...data.history.flatMap((h) => h.counts)]), [data]);
  const [picked, setPicked] = useState<string | null>(null);
  const board = picked ?? groups[0] ?? null;
  if (!board) return <p>No device reports a firmware revision yet.</p>;
  const { revisions, points } = series(data.history, board);
  const max = Math.max(1, ...points.flatMap((p) => [...p.counts.values()]));
  const t0 = points[0]?.at ?? 0;
  const t1 = points[points.length - 1]?.at ?? t0 + 1;
  const x = (t: number) => (t1 === t0 ? W / 2 : ((t - t0) / (t1 - t0)) * (W - 20) + 10);
  const y = (v: number) => H - 10 - (v / max) * (H - 20);
  const now = data.now.filter((r) => `${r.hardware}/${r.board}` === board);
  return (
    <div className="revisions">
      <label>
        Hardware / board{" "}
        <select value={board} onChange={(e) => setPicked(e.target.value)}>
          {groups.map((g) => (
            <option key={g}>{g}</option>
          ))}
        </select>
      </label>
      {points.length > 1 ? (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Firmware revisions of ${board} over time`} className="chart">
          {revisions.map((rev, i) => (
            <polyline
              key={rev}
              fill="none"
              stroke={COLORS[i % COLORS.length]}
              strokeWidth="2"
              points={points.map((p) => `${x(p.at)},${y(p.counts.get(rev) ?? 0)}`).join(" ")}
            >
              <title>revision {rev}</title>
            </polyline>
          ))}
        </svg>
      ) : (
        <p className="meta">The chart fills in hourly.</p>
      )}
      <table aria-label={`Revisions of ${board} now`}>
        <thead>
          <tr>
            <th>Revision</th>
            <th>Devices now</th>
          </tr>
        </thead>
        <tbody>
          {now.map((r, i) => (
            <tr key={r.revision}>
              <td>
                <span className="swatch" style={{ background: COLORS[revisions.indexOf(r.revision) >= 0 ? revisions.indexOf(r.revision) % COLORS.length : i % COLORS.length] }} />{" "}
                {r.revision}
              </td>
              <td>{r.devices}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
