import { useState } from "react";
import { api, type Building, type EnrolmentToken, type ForwarderHealth, type Gateway, type GatewayWithHealth, type Site } from "../../api";
import { absoluteTime, relativeTime } from "../../lib/time";
import { DeleteButton, EditableText, FormError, Table, useList, useSubmit } from "./common";
import { Select } from "../../components/Select";
import { GatewaySettings } from "./GatewaySettings";

export function Gateways() {
  const { items, error, reload } = useList<GatewayWithHealth>("/gateways");
  const sites = useList<Site>("/sites").items;
  const buildings = useList<Building>("/buildings").items;
  const [name, setName] = useState("");
  const [scope, setScope] = useState("");
  const [token, setToken] = useState<{ gateway: string; token: string; expires_at: string } | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const edited = items.find((g) => g.id === editing);

  const form = useSubmit(
    () => {
      const [kind, id] = scope.split(":", 2);
      return api("POST", "/gateways", { name, scope: kind === "site" ? { site: id } : { buildings: [id] } });
    },
    () => {
      setName("");
      reload();
    },
  );

  const enrol = async (g: GatewayWithHealth | Gateway) => {
    const t = await api<EnrolmentToken>("POST", `/gateways/${g.id}/enrolment`);
    setToken({ gateway: g.name, ...t });
    reload();
  };

  return (
    <>
      <form className="inline-form" onSubmit={form.submit} aria-label="New gateway">
        <label>
          Name
          <input required value={name} onChange={(e) => setName(e.target.value)} aria-invalid={form.field === "name"} />
        </label>
        <Select
          label="Scope"
          required
          value={scope}
          onChange={setScope}
          empty="choose…"
          choices={[...sites.map((x) => ({ value: `site:${x.id}`, label: `site ${x.name}` })), ...buildings.map((b) => ({ value: `building:${b.id}`, label: `building ${b.name}` }))]}
        />
        <button type="submit" disabled={form.busy}>
          Add gateway
        </button>
        <FormError state={form} />
      </form>
      {token && (
        <div className="card" role="status">
          <p>
            One-time enrolment token for <strong>{token.gateway}</strong> (valid until {new Date(token.expires_at).toLocaleString()}; shown once):
          </p>
          <pre className="mono">neosens-edge enroll --central {window.location.origin} --token {token.token}</pre>
        </div>
      )}
      {error && <p className="error">{error}</p>}
      <Table head={["Name", "State", "Scope", "Devices", "Packet forwarders", "MQTT user", "Enrolled", ""]} caption="Gateways">
        {items.map((g) => (
          <tr key={g.id}>
            <td>
              <EditableText path={`/gateways/${g.id}`} field="name" value={g.name} label={`gateway ${g.name}`} onDone={reload} />
            </td>
            <td title={absoluteTime(g.health?.last_contact_ms)}>
              <span className={g.up ? "badge ok" : "badge outdated"}>{g.up ? "up" : "down"}</span>
              {g.health ? ` ${relativeTime(g.health.last_contact_ms, Date.now())}` : ""}
            </td>
            <td className="mono">{JSON.stringify(g.scope)}</td>
            <td>{g.devices}</td>
            <td>
              <Forwarders list={g.health?.forwarders ?? []} />
            </td>
            <td className="mono">{g.mqtt_username}</td>
            <td>
              {g.enrolled_at ? new Date(g.enrolled_at).toLocaleString() : "no"}{" "}
              <button type="button" className="link" onClick={() => void enrol(g)}>
                {g.enrolled_at ? "re-enrol" : "enrolment token"}
              </button>
            </td>
            <td>
              <button type="button" className="link" aria-label={`Settings of gateway ${g.name}`} onClick={() => setEditing(editing === g.id ? null : g.id)}>
                settings
              </button>{" "}
              <DeleteButton path={`/gateways/${g.id}`} label={`gateway ${g.name}`} onDone={reload} />
            </td>
          </tr>
        ))}
      </Table>
      {edited && (
        <GatewaySettings
          key={edited.id}
          gateway={edited}
          onDone={() => {
            setEditing(null);
            reload();
          }}
        />
      )}
    </>
  );
}

/** The LoRaWAN packet forwarders a gateway hears: silent ones first, each with its last datagram. */
function Forwarders({ list }: { list: ForwarderHealth[] }) {
  if (list.length === 0) return <span className="muted">none</span>;
  const sorted = [...list].sort((a, b) => Number(b.silent) - Number(a.silent) || a.eui.localeCompare(b.eui));
  return (
    <ul className="plain" aria-label="packet forwarders">
      {sorted.map((f) => (
        <li key={f.eui} title={`${f.uplinks} uplinks, ${f.tx_emitted} downlinks emitted; last heard ${absoluteTime(f.last_seen_ms)}`}>
          <span className="mono">{f.eui}</span> <span className={f.silent ? "badge outdated" : "badge ok"}>{f.silent ? "silent" : "heard"}</span>{" "}
          {relativeTime(f.last_seen_ms, Date.now())}
        </li>
      ))}
    </ul>
  );
}
