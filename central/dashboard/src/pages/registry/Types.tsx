import { useState } from "react";
import { api } from "../../api";
import type { DeviceType } from "../../components/lookups";
import { DeleteButton, FormError, Table, useList, useSubmit } from "./common";

function parseSchema(text: string): unknown {
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`the schema is not valid JSON: ${(e as Error).message}`);
  }
}

export function Types() {
  const { items, error, reload } = useList<DeviceType>("/device-types");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [period, setPeriod] = useState("1800");
  const [outdated, setOutdated] = useState("");
  const [schema, setSchema] = useState("");
  const [editing, setEditing] = useState<DeviceType | null>(null);
  const [editSchema, setEditSchema] = useState("");

  const form = useSubmit(
    () =>
      api("POST", "/device-types", {
        name,
        description,
        status_period_s: Number(period) || null,
        outdated_after_s: outdated ? Number(outdated) : null,
        config_schema: parseSchema(schema),
      }),
    () => {
      setName("");
      setDescription("");
      setSchema("");
      reload();
    },
  );
  const edit = useSubmit(
    () => api("PATCH", `/device-types/${editing!.id}`, { config_schema: parseSchema(editSchema) }),
    () => {
      setEditing(null);
      reload();
    },
  );

  return (
    <>
      <form className="stack-form" onSubmit={form.submit} aria-label="New device type">
        <div className="inline-form">
          <label>
            Name
            <input required value={name} placeholder="esp32" onChange={(e) => setName(e.target.value)} aria-invalid={form.field === "name"} />
          </label>
          <label>
            Description
            <input value={description} onChange={(e) => setDescription(e.target.value)} />
          </label>
          <label>
            Status period (s)
            <input type="number" min={60} value={period} onChange={(e) => setPeriod(e.target.value)} aria-invalid={form.field === "status_period_s"} />
          </label>
          <label>
            Outdated after (s)
            <input type="number" min={60} value={outdated} placeholder="= period" onChange={(e) => setOutdated(e.target.value)} aria-invalid={form.field === "outdated_after_s"} />
          </label>
        </div>
        <label>
          Configuration schema (JSON Schema, optional)
          <textarea rows={4} spellCheck={false} value={schema} onChange={(e) => setSchema(e.target.value)} aria-invalid={form.field === "config_schema"} />
        </label>
        <button type="submit" disabled={form.busy}>
          Add type
        </button>
        <FormError state={form} />
      </form>
      {error && <p className="error">{error}</p>}
      {editing && (
        <form className="stack-form" onSubmit={edit.submit} aria-label={`Schema of ${editing.name}`}>
          <label>
            Configuration schema of {editing.name} (empty: none)
            <textarea rows={8} spellCheck={false} value={editSchema} onChange={(e) => setEditSchema(e.target.value)} />
          </label>
          <button type="submit">Save schema</button>{" "}
          <button type="button" className="secondary" onClick={() => setEditing(null)}>
            Cancel
          </button>
          <FormError state={edit} />
        </form>
      )}
      <Table head={["Name", "Description", "Period", "Outdated after", "Orders", "Schema", ""]} caption="Device types">
        {items.map((t) => (
          <tr key={t.id}>
            <td className="mono">{t.name}</td>
            <td>{t.description}</td>
            <td>{t.status_period_s} s</td>
            <td>{t.outdated_after_s} s</td>
            <td>{t.orders.join(", ")}</td>
            <td>
              <button
                type="button"
                className="link"
                onClick={() => {
                  setEditing(t);
                  const s = typeof t.config_schema === "string" ? JSON.parse(t.config_schema) : t.config_schema;
                  setEditSchema(s ? JSON.stringify(s, null, 2) : "");
                }}
              >
                {t.config_schema ? "edit" : "add"}
              </button>
            </td>
            <td>
              <DeleteButton path={`/device-types/${t.id}`} label={`type ${t.name}`} onDone={reload} />
            </td>
          </tr>
        ))}
      </Table>
    </>
  );
}
