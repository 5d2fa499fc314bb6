// A device's firmware history: the revision it reports and the campaigns that targeted it, with
// its stage in each.
import type { DeviceCampaign, Items } from "../api";
import { usePolled } from "../lib/hooks";
import { absoluteTime, relativeTime } from "../lib/time";
import { hrefOf } from "../lib/router";

export function DeviceFirmware({ id, reported, now }: { id: string; reported: unknown; now: number }) {
  const { data } = usePolled<Items<DeviceCampaign>>(`/devices/${encodeURIComponent(id)}/firmware`, 15_000);
  return (
    <article className="card" aria-labelledby="device-firmware">
      <h2 id="device-firmware">Firmware</h2>
      <p>Reports revision {typeof reported === "number" ? reported : "—"}.</p>
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Campaigns that targeted this device, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Campaign</th>
              <th scope="col">Revision</th>
              <th scope="col">Wave</th>
              <th scope="col">Stage</th>
              <th scope="col">Since</th>
            </tr>
          </thead>
          <tbody>
            {(data?.items ?? []).map((c) => (
              <tr key={c.campaign}>
                <td>
                  <a href={hrefOf(["firmware"])}>{c.name}</a> ({c.state})
                </td>
                <td>{c.revision ?? "—"}</td>
                <td>
                  {c.wave}
                  {c.wave_started ? "" : " (not started)"}
                </td>
                <td>{c.stage.replaceAll("_", " ")}</td>
                <td title={absoluteTime(c.since ?? null)}>{c.since ? relativeTime(c.since, now) : ""}</td>
              </tr>
            ))}
            {data && data.items.length === 0 && (
              <tr>
                <td colSpan={5}>No campaign targeted this device.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </article>
  );
}
