// A gateway's settings set in central (docs/edge.md, "Settings from central"): one field per key
// of the agent's configuration file that central may set, empty meaning "not set here" (the
// gateway's file or default decides), beside what the gateway reports it runs with.
import { useState } from "react";
import { api, type GatewayWithHealth, type ManagedConfig } from "../../api";
import { FormError, useSubmit } from "./common";

type Kind = "text" | "number" | "bool" | "list";

/** The keys central may set, as `section.key`, in the configuration file's order. */
const KEYS: { key: string; kind: Kind; help: string }[] = [
  { key: "log.filter", kind: "text", help: "tracing directives, e.g. info,neosens_edge=debug (applied without a restart)" },
  { key: "agent.status_period_s", kind: "number", help: "seconds between two statuses of the gateway" },
  { key: "lorawan.udp_bind", kind: "text", help: "packet-forwarder listener, address:port or off" },
  { key: "lorawan.serial_port", kind: "text", help: "serial LoRa modem under /dev/, or off" },
  { key: "lorawan.serial_baud", kind: "number", help: "its speed" },
  { key: "lorawan.serial_protocol", kind: "text", help: "rn2483 or hex_lines" },
  { key: "lorawan.adr", kind: "bool", help: "adaptive data rate" },
  { key: "lorawan.adr_margin_db", kind: "number", help: "ADR margin, dB" },
  { key: "hal.status_led", kind: "text", help: "status LED, chip:line (gpiochip0:17) or off" },
  { key: "hal.status_led_active_low", kind: "bool", help: "the LED lights when the line is low" },
  { key: "hal.i2c_bus", kind: "text", help: "I2C bus of local sensors (/dev/i2c-1), or off" },
  { key: "hal.sensors", kind: "list", help: "comma-separated, e.g. sht3x@0x44, mcp9808@0x18" },
  { key: "hal.sensor_period_s", kind: "number", help: "seconds between two measurements" },
];

type Sections = Record<string, Record<string, unknown>>;

function read(config: ManagedConfig | null | undefined, key: string): unknown {
  const [section, name] = key.split(".");
  return ((config as unknown as Sections | undefined)?.[section] ?? {})[name] ?? null;
}

function show(value: unknown): string {
  if (value === null || value === undefined) return "";
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/** The form's text back to the API's value (`null`: not set here); a number that is not a
 * whole one is refused here (JSON would send NaN as null, clearing the setting). */
function parse(key: string, kind: Kind, text: string): unknown {
  const t = text.trim();
  if (t === "") return null;
  if (kind === "number") {
    if (!/^\d{1,9}$/.test(t)) throw new Error(`config.${key}: a whole number, not ${JSON.stringify(t)}`);
    return Number(t);
  }
  if (kind === "bool") return t === "true";
  if (kind === "list") return t.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return t;
}

export function GatewaySettings({ gateway, onDone }: { gateway: GatewayWithHealth; onDone: () => void }) {
  const [values, setValues] = useState<Record<string, string>>(() => Object.fromEntries(KEYS.map(({ key }) => [key, show(read(gateway.config, key))])));
  const report = gateway.health?.report?.config ?? null;
  const overridden = new Set(report?.overridden ?? []);
  const form = useSubmit(async () => {
    const config: Sections = { log: {}, agent: {}, lorawan: {}, hal: {} };
    for (const { key, kind } of KEYS) {
      const [section, name] = key.split(".");
      config[section][name] = parse(key, kind, values[key]);
    }
    return api("PATCH", `/gateways/${gateway.id}`, { config });
  }, onDone);

  return (
    <form className="card" onSubmit={form.submit} aria-label={`Settings of gateway ${gateway.name}`}>
      <h3>Settings of {gateway.name}</h3>
      <p className="muted">
        Empty: not set here, the gateway's own file (or its default) decides. A key set in the gateway's file wins over central's. Any change but the log filter restarts the agent.
      </p>
      {report?.rejected && (
        <p role="alert" className="error">
          The gateway does not apply these settings: {report.rejected}
        </p>
      )}
      {report?.restart_pending && <p role="status">The gateway is restarting to apply new settings.</p>}
      <table>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col">Set in central</th>
            <th scope="col">The gateway runs with</th>
          </tr>
        </thead>
        <tbody>
          {KEYS.map(({ key, kind, help }) => (
            <tr key={key}>
              <td className="mono" title={help}>
                {key}
              </td>
              <td>
                {kind === "bool" ? (
                  <select aria-label={key} value={values[key]} onChange={(e) => setValues({ ...values, [key]: e.target.value })} aria-invalid={form.field === `config.${key}`}>
                    <option value="">not set</option>
                    <option value="true">true</option>
                    <option value="false">false</option>
                  </select>
                ) : (
                  <input
                    aria-label={key}
                    inputMode={kind === "number" ? "numeric" : undefined}
                    value={values[key]}
                    placeholder="not set"
                    onChange={(e) => setValues({ ...values, [key]: e.target.value })}
                    aria-invalid={form.field === `config.${key}`}
                  />
                )}
              </td>
              <td className="mono">
                {report ? show(read(report.effective, key)) : <span className="muted">no report yet</span>}
                {overridden.has(key) && (
                  <>
                    {" "}
                    <span className="badge outdated">the gateway's file wins</span>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="submit" disabled={form.busy}>
        Save settings
      </button>
      <FormError state={form} />
    </form>
  );
}
