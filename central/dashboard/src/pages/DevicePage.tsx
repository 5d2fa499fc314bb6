// One device: identity, location, configuration (JSON, checked by central against the type's
// schema; errors shown next to the editor), MQTT settings, credentials, last status, orders
// (downlinks for LoRaWAN nodes, with each step their gateways report).
import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError, type Device, type OrderRecord } from "../api";
import { usePolled, useNow } from "../lib/hooks";
import { absoluteTime, relativeTime } from "../lib/time";
import { STATE_LABEL } from "../lib/fleet";
import { useSession, can } from "../session";
import { hrefOf } from "../lib/router";
import { roomLabel, useLookups } from "../components/lookups";
import { DeviceSettings } from "../components/DeviceSettings";
import { Select } from "../components/Select";
import { DeviceFirmware } from "../components/DeviceFirmware";
import { DeviceTimeline } from "../components/DeviceTimeline";

const ORDERS = [
  { order: "status", label: "Ask for a status" },
  { order: "frequency", label: "Set the status period (seconds)" },
  { order: "reboot", label: "Reboot" },
  { order: "reinstall", label: "Reinstall (new credentials, then reboot)" },
] as const;

function ConfigEditor({ device, onSaved, readOnly }: { device: Device; onSaved: () => void; readOnly: boolean }) {
  const [text, setText] = useState(() => JSON.stringify(device.config, null, 2));
  const [errors, setErrors] = useState<string[]>([]);
  const [saved, setSaved] = useState(false);
  useEffect(() => setText(JSON.stringify(device.config, null, 2)), [device.id]); // eslint-disable-line react-hooks/exhaustive-deps

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (err) {
      setErrors([`not valid JSON: ${(err as Error).message}`]);
      return;
    }
    try {
      await api("PATCH", `/devices/${encodeURIComponent(device.id)}`, { config });
      setErrors([]);
      setSaved(true);
      onSaved();
    } catch (err) {
      if (err instanceof ApiError) setErrors(err.details?.length ? err.details : [err.message]);
      else setErrors([String(err)]);
    }
  };

  return (
    <form onSubmit={save} className="config-editor">
      <label htmlFor="config-text">Configuration (zones, JSON)</label>
      <textarea
        id="config-text"
        spellCheck={false}
        rows={Math.min(24, Math.max(6, text.split("\n").length + 1))}
        value={text}
        readOnly={readOnly}
        aria-invalid={errors.length > 0}
        aria-describedby="config-errors"
        onChange={(e) => {
          setText(e.target.value);
          setSaved(false);
        }}
      />
      <div id="config-errors" role="alert" className="error">
        {errors.length > 0 && (
          <ul>
            {errors.map((m, i) => (
              <li key={i}>{m}</li>
            ))}
          </ul>
        )}
      </div>
      {!readOnly && <button type="submit">Save configuration</button>}
      {saved && <span className="ok-text"> Saved: the device gets it at its next /device/config.</span>}
    </form>
  );
}

type Message = { ok: boolean; text: string } | null;

/** Sends an order; says how it went (with `describe` of the record) and refreshes the history. */
async function sendOrder(
  device: Device,
  body: Record<string, unknown>,
  describe: (r: OrderRecord) => string,
  setMessage: (m: Message) => void,
  onSent: () => void,
) {
  try {
    const record = await api<OrderRecord>("POST", `/devices/${encodeURIComponent(device.id)}/orders`, body);
    setMessage({ ok: true, text: describe(record) });
  } catch (err) {
    setMessage({ ok: false, text: err instanceof Error ? err.message : String(err) });
  }
  onSent();
}

function OrderForm({ device, onSent }: { device: Device; onSent: () => void }) {
  const [order, setOrder] = useState<string>("status");
  const [value, setValue] = useState("1800");
  const [message, setMessage] = useState<Message>(null);

  const send = async (e: FormEvent) => {
    e.preventDefault();
    if (order === "reinstall" && !window.confirm(`Reinstall ${device.uid}? Its credentials are reset and it reboots to fetch new ones.`)) return;
    if (order === "reboot" && !window.confirm(`Reboot ${device.uid}?`)) return;
    const body: Record<string, unknown> = { order };
    if (order === "frequency") {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) {
        setMessage({ ok: false, text: "the period is a whole number of seconds" });
        return;
      }
      body.value = n;
    }
    await sendOrder(device, body, (r) => `${r.order} ${r.outcome} on ${r.topic}`, setMessage, onSent);
  };

  return (
    <form onSubmit={send} className="order-form">
      <Select label="Order" value={order} onChange={setOrder} choices={ORDERS.map((o) => ({ value: o.order, label: o.label }))} />
      {order === "frequency" && (
        <label>
          Period (s)
          <input type="number" min={900} max={21600} step={1} value={value} onChange={(e) => setValue(e.target.value)} />
        </label>
      )}
      <button type="submit">Send order</button>
      <p role="status" className={message?.ok ? "ok-text" : "error"}>
        {message?.text}
      </p>
    </form>
  );
}

/** A node order: application data queued at the node's gateways until its next uplink. */
function DownlinkForm({ device, onSent }: { device: Device; onSent: () => void }) {
  const [data, setData] = useState("");
  const [port, setPort] = useState("");
  const [confirmed, setConfirmed] = useState(false);
  const [message, setMessage] = useState<Message>(null);

  const send = async (e: FormEvent) => {
    e.preventDefault();
    const hex = data.replace(/\s+/g, "");
    if (!/^([0-9a-fA-F]{2})*$/.test(hex)) {
      setMessage({ ok: false, text: "the payload is hex, two digits per byte" });
      return;
    }
    const value: Record<string, unknown> = { data: hex, confirmed };
    if (port !== "") value.f_port = Number(port);
    await sendOrder(device, { order: "downlink", value }, (r) => `downlink ${r.dest}: ${r.outcome}`, setMessage, onSent);
  };

  return (
    <form onSubmit={send} className="order-form">
      <label>
        Payload (hex)
        <input className="mono" value={data} onChange={(e) => setData(e.target.value)} placeholder="0102" />
      </label>
      <label>
        FPort
        <input type="number" min={1} max={223} value={port} onChange={(e) => setPort(e.target.value)} placeholder="last uplink's" />
      </label>
      <label>
        <input type="checkbox" checked={confirmed} onChange={(e) => setConfirmed(e.target.checked)} /> Confirmed
      </label>
      <button type="submit">Queue downlink</button>
      <p role="status" className={message?.ok ? "ok-text" : "error"}>
        {message?.text}
      </p>
    </form>
  );
}

export function DevicePage({ id }: { id: string }) {
  const session = useSession();
  const operator = can(session, "operator");
  const now = useNow();
  const lookups = useLookups();
  const { data: device, error, refresh } = usePolled<Device>(`/devices/${encodeURIComponent(id)}`, 5_000);
  const { data: orders, refresh: refreshOrders } = usePolled<{ items: OrderRecord[] }>(`/devices/${encodeURIComponent(id)}/orders`, 10_000);
  const [notice, setNotice] = useState<string | null>(null);

  if (!device) return <p className="loading">{error ? `Cannot load ${id}: ${error}` : "Loading…"}</p>;

  const resetCredentials = async () => {
    if (!window.confirm(`Reset the credentials of ${device.uid}? It gets a new password at its next /device/credentials call.`)) return;
    try {
      await api("POST", `/devices/${encodeURIComponent(device.id)}/credentials/reset`);
      setNotice("Credentials reset: a new password waits for the device.");
      refresh();
    } catch (e) {
      setNotice(`Not reset: ${(e as Error).message}`);
    }
  };

  const setEnabled = async (enabled: boolean) => {
    try {
      await api("POST", `/devices/${encodeURIComponent(device.id)}/${enabled ? "enable" : "disable"}`);
      refresh();
    } catch (e) {
      setNotice((e as Error).message);
    }
  };

  return (
    <section aria-labelledby="device-title" className="device-page">
      <p>
        <a href={hrefOf(["devices"])}>← Devices</a>
      </p>
      <h1 id="device-title">
        <span className="mono">{device.uid}</span>{" "}
        <span className={`badge ${device.state}`} data-testid="device-state">
          {STATE_LABEL[device.state]}
        </span>
      </h1>
      {notice && <p role="status">{notice}</p>}
      <div className="cards">
        <article className="card">
          <h2>Identity</h2>
          <dl>
            <dt>Kind</dt>
            <dd>{device.uid_kind}</dd>
            <dt>Type</dt>
            <dd>{device.type}</dd>
            <dt>Description</dt>
            <dd>{device.description || "—"}</dd>
            <dt>Location</dt>
            <dd>{device.rooms.length ? device.rooms.map((r) => roomLabel(lookups, r.id) || r.name).join(", ") : "no room"}</dd>
            <dt>Base topic</dt>
            <dd className="mono">{device.base_topic ?? "—"}</dd>
            <dt>Last seen</dt>
            <dd title={absoluteTime(device.last_seen)}>{relativeTime(device.last_seen, now)}</dd>
            <dt>Outdated after</dt>
            <dd>{Math.round(device.effective_outdated_after_s / 60)} min</dd>
            <dt>Enabled</dt>
            <dd>
              {device.enabled ? "yes" : "no"}{" "}
              {operator && (
                <button type="button" className="link" onClick={() => setEnabled(!device.enabled)}>
                  {device.enabled ? "Disable" : "Enable"}
                </button>
              )}
            </dd>
            {device.lorawan && (
              <>
                <dt>LoRaWAN session</dt>
                <dd className="mono">
                  DevAddr {device.lorawan.dev_addr}, {device.lorawan.codec}, FCntUp {device.lorawan.f_cnt_up}
                </dd>
              </>
            )}
            {device.otaa && (
              <>
                <dt>OTAA</dt>
                <dd className="mono">
                  JoinEUI {device.otaa.join_eui},{" "}
                  {device.otaa.last_join_at
                    ? `joined ${relativeTime(device.otaa.last_join_at, now)} (DevNonce ${device.otaa.last_join_dev_nonce})`
                    : "not joined yet"}
                </dd>
              </>
            )}
          </dl>
        </article>
        <article className="card">
          <h2>MQTT and credentials</h2>
          <dl>
            <dt>Login</dt>
            <dd className="mono">{device.login}</dd>
            <dt>Broker</dt>
            <dd className="mono">{device.mqtt ? `${device.mqtt.server}:${device.mqtt.port}` : "central's default"}</dd>
            <dt>Password</dt>
            <dd data-testid="credentials">{device.credentials_delivered ? "delivered" : "waiting for the device to fetch it"}</dd>
          </dl>
          {operator && (
            <button type="button" className="secondary" onClick={resetCredentials}>
              Reset credentials
            </button>
          )}
        </article>
      </div>
      {operator && (
        <article className="card">
          <h2>Settings</h2>
          <DeviceSettings device={device} lookups={lookups} onSaved={refresh} />
        </article>
      )}
      <article className="card">
        <h2>Last status</h2>
        <p>{device.last_status ?? "No status received yet."}</p>
        {device.last_payload != null && <pre className="payload">{JSON.stringify(device.last_payload, null, 2)}</pre>}
      </article>
      {device.uid_kind !== "lorawan" && (
        <DeviceFirmware
          id={id}
          reported={(device.last_payload as Record<string, unknown> | null | undefined)?.firmware}
          now={now}
        />
      )}
      <DeviceTimeline id={id} now={now} />
      <article className="card">
        <h2>Configuration</h2>
        <ConfigEditor device={device} onSaved={refresh} readOnly={!operator} />
      </article>
      <article className="card">
        <h2>Orders</h2>
        {!operator ? (
          <p>Viewers cannot send orders.</p>
        ) : device.uid_kind === "lorawan" ? (
          <DownlinkForm device={device} onSent={refreshOrders} />
        ) : (
          <OrderForm device={device} onSent={refreshOrders} />
        )}
        <div className="table-wrap">
          <table className="orders">
            <caption className="sr-only">Order history, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">By</th>
                <th scope="col">Order</th>
                <th scope="col">Value</th>
                <th scope="col">Outcome</th>
                <th scope="col">Reference</th>
                <th scope="col">Payload</th>
              </tr>
            </thead>
            <tbody>
              {(orders?.items ?? []).map((o, i) => (
                <tr key={`${o.at}-${i}`}>
                  <td title={absoluteTime(o.at)}>{relativeTime(o.at, now)}</td>
                  <td>{o.by}</td>
                  <td>{o.order}</td>
                  <td>{o.value ?? ""}</td>
                  <td>{o.outcome}</td>
                  <td className="mono">{o.module === "lorawan" ? o.dest : ""}</td>
                  <td className="mono">{o.payload}</td>
                </tr>
              ))}
              {orders && orders.items.length === 0 && (
                <tr>
                  <td colSpan={7}>No order sent yet.</td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </article>
    </section>
  );
}
