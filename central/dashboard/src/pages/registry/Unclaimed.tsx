// The adoption inbox: boards that are not registered and asked for their credentials. Adopting
// one (type, room) registers it under its MAC; its next retry gets its credentials.
import { useState } from "react";
import { api, type UnclaimedDevice } from "../../api";
import { roomLabel, useLookups, type Lookups } from "../../components/lookups";
import { Select } from "../../components/Select";
import { absoluteTime, relativeTime } from "../../lib/time";
import { can, useSession } from "../../session";
import { FormError, Table, useList, useSubmit } from "./common";

export function Unclaimed() {
  const { items, error, reload } = useList<UnclaimedDevice>("/unclaimed");
  const lookups = useLookups();
  const operator = can(useSession(), "operator");
  return (
    <>
      <p className="hint">
        Boards that asked for their credentials without being registered (in the last 24 h, at central or through a gateway). Adopt one: its next retry gets its credentials.
      </p>
      {error && <p className="error">{error}</p>}
      <Table head={operator ? ["MAC", "Board", "Asked", "Last", "From", "Adopt", ""] : ["MAC", "Board", "Asked", "Last", "From"]} caption="Unclaimed devices">
        {items.map((d) => (
          <tr key={d.mac} data-mac={d.mac}>
            <td className="mono">{d.mac}</td>
            <td title={d.user_agent ?? ""}>{d.board ?? d.user_agent ?? "?"}</td>
            <td title={`first ${absoluteTime(d.first_seen_ms)}`}>{d.count}×</td>
            <td title={absoluteTime(d.last_seen_ms)}>{relativeTime(d.last_seen_ms, Date.now())}</td>
            <td className="mono">
              {d.source}
              {d.gateway ? ` via gateway ${d.gateway.slice(0, 8)}` : ""}
            </td>
            {operator && (
              <>
                <td>
                  <Adopt device={d} lookups={lookups} onDone={reload} />
                </td>
                <td>
                  <button type="button" className="link" onClick={() => void api("DELETE", `/unclaimed/${d.mac}`).then(reload)} aria-label={`Dismiss ${d.mac}`}>
                    Dismiss
                  </button>
                </td>
              </>
            )}
          </tr>
        ))}
      </Table>
      {items.length === 0 && !error && <p className="muted">No unregistered board has asked for its credentials.</p>}
    </>
  );
}

function Adopt({ device, lookups, onDone }: { device: UnclaimedDevice; lookups: Lookups; onDone: () => void }) {
  const [type, setType] = useState("");
  const [room, setRoom] = useState("");
  const form = useSubmit(() => api("POST", `/unclaimed/${device.mac}/adopt`, { type, rooms: [room] }), onDone);
  return (
    <form className="inline-form" onSubmit={form.submit} aria-label={`Adopt ${device.mac}`}>
      <Select label="Type" required value={type} onChange={setType} empty="choose…" choices={lookups.types.map((t) => ({ value: t.name, label: t.name }))} />
      <Select label="Room" required value={room} onChange={setRoom} empty="choose…" choices={lookups.rooms.map((r) => ({ value: r.id, label: roomLabel(lookups, r.id) }))} />
      <button type="submit" disabled={form.busy}>
        Adopt
      </button>
      <FormError state={form} />
    </form>
  );
}
