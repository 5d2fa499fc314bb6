// The audit trail: who changed what and when, newest first, with the fields before and after;
// filters by action, actor and target; older pages on request. Operators and admins only.
import { useEffect, useState, type FormEvent } from "react";
import { api, type AuditEntry, type AuditPage } from "../api";
import { useNow } from "../lib/hooks";
import { absoluteTime, relativeTime } from "../lib/time";
import { actorLabel, auditQuery, changeValue, type AuditFilters } from "../lib/audit";

const EMPTY: AuditFilters = { action: "", actor: "", target: "" };

function Changes({ entry }: { entry: AuditEntry }) {
  if (entry.changes.length === 0) return <>{entry.detail}</>;
  return (
    <ul className="changes">
      {entry.changes.map((c) => (
        <li key={c.field}>
          <span className="mono">{c.field}</span>: <del>{changeValue(c.before)}</del> → <ins>{changeValue(c.after)}</ins>
        </li>
      ))}
      {entry.detail && <li>{entry.detail}</li>}
    </ul>
  );
}

export function Audit() {
  const [draft, setDraft] = useState<AuditFilters>(EMPTY);
  const [filters, setFilters] = useState<AuditFilters>(EMPTY);
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [total, setTotal] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const now = useNow();

  const load = async (before: number | null, keep: AuditEntry[]) => {
    try {
      const page = await api<AuditPage>("GET", auditQuery(filters, before));
      setEntries([...keep, ...page.items]);
      setNext(page.next_before ?? null);
      setTotal(page.total);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  useEffect(() => {
    void load(null, []);
    // A new filter starts from the newest entry again.
  }, [filters]);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    setFilters({ ...draft });
  };

  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit</h1>
      <form className="filters" aria-label="Audit filters" onSubmit={apply}>
        <label>
          Action
          <input value={draft.action} placeholder="device.update or device." onChange={(e) => setDraft({ ...draft, action: e.target.value })} />
        </label>
        <label>
          Who
          <input value={draft.actor} placeholder="user, token, MAC" onChange={(e) => setDraft({ ...draft, actor: e.target.value })} />
        </label>
        <label>
          Target
          <input value={draft.target} placeholder="MAC, room, id" onChange={(e) => setDraft({ ...draft, target: e.target.value })} />
        </label>
        <button type="submit">Filter</button>
      </form>
      {error && <p className="error" role="alert">Cannot load the audit trail: {error}</p>}
      {total !== null && <p className="meta">{total.toLocaleString()} entries kept in all.</p>}
      <div className="table-wrap">
        <table className="audit">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Changes</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id} data-action={e.action}>
                <td title={absoluteTime(e.at)}>{relativeTime(e.at, now)}</td>
                <td>{actorLabel(e)}</td>
                <td className="mono">{e.action}</td>
                <td className="mono">{e.target || "—"}</td>
                <td>
                  <Changes entry={e} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {entries.length === 0 && total !== null && !error && <p>No entry matches.</p>}
      {next !== null && (
        <button type="button" className="secondary" onClick={() => void load(next, entries)}>
          Older entries
        </button>
      )}
    </section>
  );
}
