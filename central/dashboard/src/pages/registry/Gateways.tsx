import { useState } from "react";
import { api, type Building, type EnrolmentToken, type Gateway, type Site } from "../../api";
import { DeleteButton, EditableText, FormError, Table, useList, useSubmit } from "./common";
import { Select } from "../../components/Select";

export function Gateways() {
  const { items, error, reload } = useList<Gateway>("/gateways");
  const sites = useList<Site>("/sites").items;
  const buildings = useList<Building>("/buildings").items;
  const [name, setName] = useState("");
  const [scope, setScope] = useState("");
  const [token, setToken] = useState<{ gateway: string; token: string; expires_at: string } | null>(null);

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

  const enrol = async (g: Gateway) => {
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
      <Table head={["Name", "Scope", "Devices", "MQTT user", "Enrolled", ""]} caption="Gateways">
        {items.map((g) => (
          <tr key={g.id}>
            <td>
              <EditableText path={`/gateways/${g.id}`} field="name" value={g.name} label={`gateway ${g.name}`} onDone={reload} />
            </td>
            <td className="mono">{JSON.stringify(g.scope)}</td>
            <td>{g.devices}</td>
            <td className="mono">{g.mqtt_username}</td>
            <td>
              {g.enrolled_at ? new Date(g.enrolled_at).toLocaleString() : "no"}{" "}
              <button type="button" className="link" onClick={() => void enrol(g)}>
                {g.enrolled_at ? "re-enrol" : "enrolment token"}
              </button>
            </td>
            <td>
              <DeleteButton path={`/gateways/${g.id}`} label={`gateway ${g.name}`} onDone={reload} />
            </td>
          </tr>
        ))}
      </Table>
    </>
  );
}
