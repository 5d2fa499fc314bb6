// Pieces shared by the registry forms: submitting with errors shown by the field that caused
// them (central names it), and a list that reloads after each change.
import { useCallback, useEffect, useState, type FormEvent, type ReactNode } from "react";
import { api, ApiError } from "../../api";

export interface FormState {
  error: string | null;
  field: string | null;
  busy: boolean;
}

export function useSubmit(action: () => Promise<unknown>, onDone: () => void) {
  const [state, setState] = useState<FormState>({ error: null, field: null, busy: false });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setState({ error: null, field: null, busy: true });
    try {
      await action();
      setState({ error: null, field: null, busy: false });
      onDone();
    } catch (err) {
      const field = err instanceof ApiError ? (err.field ?? null) : null;
      const details = err instanceof ApiError && err.details?.length ? `: ${err.details.join("; ")}` : "";
      setState({ error: `${(err as Error).message}${details}`, field, busy: false });
    }
  };
  return { ...state, submit };
}

export function FormError({ state }: { state: FormState }) {
  return (
    <p role="alert" className="error">
      {state.error ? `${state.field && !state.error.startsWith(`${state.field}:`) ? `${state.field}: ` : ""}${state.error}` : ""}
    </p>
  );
}

export function useList<T>(path: string) {
  const [items, setItems] = useState<T[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    api<{ items: T[] }>("GET", path)
      .then((r) => {
        setItems(r.items);
        setError(null);
      })
      .catch((e) => setError((e as Error).message));
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { items, error, reload };
}

export function DeleteButton({ path, label, onDone }: { path: string; label: string; onDone: () => void }) {
  const [error, setError] = useState<string | null>(null);
  return (
    <>
      <button
        type="button"
        className="link danger"
        aria-label={`Delete ${label}`}
        onClick={async () => {
          if (!window.confirm(`Delete ${label}?`)) return;
          try {
            await api("DELETE", path);
            onDone();
          } catch (e) {
            setError((e as Error).message);
          }
        }}
      >
        Delete
      </button>
      {error && (
        <span role="alert" className="error">
          {" "}
          {error}
        </span>
      )}
    </>
  );
}

export function Table({ head, children, caption }: { head: string[]; children: ReactNode; caption: string }) {
  return (
    <div className="table-wrap">
      <table>
        <caption className="sr-only">{caption}</caption>
        <thead>
          <tr>
            {head.map((h) => (
              <th key={h} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** A name shown as text, edited in place (PATCH `path` with `{field: value}`). */
export function EditableText({ path, field, value, label, onDone }: { path: string; field: string; value: string; label: string; onDone: () => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(value);
  const form = useSubmit(() => api("PATCH", path, { [field]: text }), () => {
    setEditing(false);
    onDone();
  });
  if (!editing) {
    return (
      <>
        {value}{" "}
        <button
          type="button"
          className="link"
          aria-label={`Rename ${label}`}
          onClick={() => {
            setText(value);
            setEditing(true);
          }}
        >
          rename
        </button>
      </>
    );
  }
  return (
    <form onSubmit={form.submit} className="inline-edit">
      <input aria-label={`New ${field} of ${label}`} value={text} autoFocus onChange={(e) => setText(e.target.value)} aria-invalid={form.error ? true : undefined} />
      <button type="submit">Save</button>
      <button type="button" className="secondary" onClick={() => setEditing(false)}>
        Cancel
      </button>
      <FormError state={form} />
    </form>
  );
}
