// One action on every device of the current filter: preview ("412 devices"), confirmation with
// that number, then the operation's outcome — orders go out paced, their progress followed.
import { useEffect, useState, type FormEvent } from "react";
import { api, type BulkOperation, type BulkPreview } from "../api";
import type { Lookups } from "./lookups";
import { roomLabel } from "./lookups";

type Kind = "enable" | "disable" | "move" | "set_type" | "order" | "reset_credentials";

const LABEL: Record<Kind, string> = {
  enable: "Enable",
  disable: "Disable",
  move: "Move to a room",
  set_type: "Change type",
  order: "Send an order",
  reset_credentials: "Reset credentials",
};

/** The filter of the device table as a bulk target (only what is set). */
export type Target = Record<string, string | undefined>;

export function BulkAction({ target, lookups }: { target: Target; lookups: Lookups }) {
  const [kind, setKind] = useState<Kind>("order");
  const [room, setRoom] = useState("");
  const [type, setType] = useState("");
  const [order, setOrder] = useState("frequency");
  const [value, setValue] = useState("900");
  const [preview, setPreview] = useState<BulkPreview | null>(null);
  const [operation, setOperation] = useState<BulkOperation | null>(null);
  const [error, setError] = useState<string | null>(null);

  const cleaned = Object.fromEntries(Object.entries(target).filter(([, v]) => v !== undefined && v !== ""));
  const body = () => ({
    target: cleaned,
    action: kind,
    ...(kind === "move" ? { room } : {}),
    ...(kind === "set_type" ? { type } : {}),
    ...(kind === "order" ? { order, ...(value.trim() ? { value: Number.isNaN(Number(value)) ? value : Number(value) } : {}) } : {}),
  });

  const check = async (e: FormEvent) => {
    e.preventDefault();
    setOperation(null);
    try {
      setPreview(await api<BulkPreview>("POST", "/bulk-operations/preview", body()));
      setError(null);
    } catch (err) {
      setPreview(null);
      setError((err as Error).message);
    }
  };

  const run = async () => {
    if (!preview) return;
    try {
      setOperation(await api<BulkOperation>("POST", "/bulk-operations", { ...body(), confirm: preview.confirm }));
      setPreview(null);
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  // A preview confirms one action on one set of devices: any change asks for a new one.
  const asked = JSON.stringify(body());
  useEffect(() => setPreview(null), [asked]);

  // Orders go out paced: follow the operation until every device has its outcome.
  useEffect(() => {
    if (!operation || operation.finished_at) return;
    const timer = window.setTimeout(() => {
      api<BulkOperation>("GET", `/bulk-operations/${operation.id}?limit=0`).then(setOperation).catch(() => {});
    }, 1000);
    return () => window.clearTimeout(timer);
  }, [operation]);

  return (
    <details className="bulk-action">
      <summary>Act on the devices of this filter</summary>
      <form aria-label="Bulk action" className="inline-form" onSubmit={check}>
        <label>
          Action
          <select value={kind} onChange={(e) => { setKind(e.target.value as Kind); setPreview(null); }}>
            {(Object.keys(LABEL) as Kind[]).map((k) => (
              <option key={k} value={k}>{LABEL[k]}</option>
            ))}
          </select>
        </label>
        {kind === "move" && (
          <label>
            Room
            <select value={room} onChange={(e) => setRoom(e.target.value)} required>
              <option value="">—</option>
              {lookups.rooms.map((r) => (
                <option key={r.id} value={r.id}>{roomLabel(lookups, r.id)}</option>
              ))}
            </select>
          </label>
        )}
        {kind === "set_type" && (
          <label>
            Type
            <select value={type} onChange={(e) => setType(e.target.value)} required>
              <option value="">—</option>
              {lookups.types.map((t) => (
                <option key={t.id} value={t.name}>{t.name}</option>
              ))}
            </select>
          </label>
        )}
        {kind === "order" && (
          <>
            <label>
              Order
              <input value={order} onChange={(e) => setOrder(e.target.value)} required />
            </label>
            <label>
              Value
              <input value={value} onChange={(e) => setValue(e.target.value)} />
            </label>
          </>
        )}
        <button type="submit">Preview</button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
      {preview && (
        <div role="status" className="bulk-preview">
          <p>
            <strong>{preview.devices} devices</strong>
            {preview.sample.length > 0 && <> — {preview.sample.join(", ")}{preview.devices > preview.sample.length ? " …" : ""}</>}
            {preview.order_seconds != null && <> (orders paced: about {preview.order_seconds} s)</>}
          </p>
          <button type="button" onClick={() => void run()} disabled={preview.devices === 0}>
            {LABEL[kind]}: confirm for {preview.devices} devices
          </button>
        </div>
      )}
      {operation && (
        <p role="status" className="bulk-result" data-operation={operation.id}>
          Operation {operation.id} ({operation.action} {operation.detail}): {operation.done} done, {operation.failed} failed,{" "}
          {operation.pending} pending{operation.finished_at ? " — finished." : "…"}
        </p>
      )}
    </details>
  );
}
