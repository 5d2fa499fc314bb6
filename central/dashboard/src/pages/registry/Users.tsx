import { useState } from "react";
import { api, type Role, type User } from "../../api";
import { DeleteButton, FormError, Table, useList, useSubmit } from "./common";
import { Select } from "../../components/Select";

/** Slugs typed as "a, b": the list the API takes (empty: the whole campus). */
function slugs(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** A local user's sites, changed in place (a directory user's follow its groups at sign-in). */
function SitesCell({ user, onDone }: { user: User; onDone: () => void }) {
  const [editing, setEditing] = useState(false);
  const shown = user.sites.length === 0 ? "whole campus" : user.sites.join(", ");
  if (editing) {
    // Mounted anew at each opening: no error left from the last attempt.
    return <SitesForm user={user} onClose={() => setEditing(false)} onDone={() => { setEditing(false); onDone(); }} />;
  }
  return (
    <>
      {shown}{" "}
      {user.source === "local" && (
        <button type="button" className="link" aria-label={`Change the sites of ${user.username}`} onClick={() => setEditing(true)}>
          change
        </button>
      )}
    </>
  );
}

function SitesForm({ user, onClose, onDone }: { user: User; onClose: () => void; onDone: () => void }) {
  const [text, setText] = useState(user.sites.join(", "));
  const form = useSubmit(() => api("PATCH", `/users/${user.id}`, { sites: slugs(text) }), onDone);
  return (
    <form onSubmit={form.submit} className="inline-edit">
      <input aria-label={`Sites of ${user.username} (empty: whole campus)`} value={text} autoFocus onChange={(e) => setText(e.target.value)} aria-invalid={form.error ? true : undefined} />
      <button type="submit" disabled={form.busy}>
        Save
      </button>
      <button type="button" className="secondary" onClick={onClose}>
        Cancel
      </button>
      <FormError state={form} />
    </form>
  );
}

export function Users() {
  const { items, error, reload } = useList<User>("/users");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [sites, setSites] = useState("");
  const form = useSubmit(() => api("POST", "/users", { username, password, role, sites: slugs(sites) }), () => {
    setUsername("");
    setPassword("");
    setSites("");
    reload();
  });
  return (
    <>
      <form className="inline-form" onSubmit={form.submit} aria-label="New user">
        <label>
          User name
          <input required autoComplete="off" value={username} onChange={(e) => setUsername(e.target.value)} aria-invalid={form.field === "username"} />
        </label>
        <label>
          Password (10+ characters)
          <input required type="password" autoComplete="new-password" minLength={10} value={password} onChange={(e) => setPassword(e.target.value)} aria-invalid={form.field === "password"} />
        </label>
        <Select
          label="Role"
          value={role}
          onChange={(v) => setRole(v as Role)}
          choices={[
            { value: "viewer", label: "viewer (reads)" },
            { value: "operator", label: "operator (orders, devices)" },
            { value: "admin", label: "admin (everything)" },
          ]}
        />
        <label>
          Only on sites (slugs, comma-separated; empty: whole campus)
          <input autoComplete="off" value={sites} onChange={(e) => setSites(e.target.value)} aria-invalid={form.field === "sites"} />
        </label>
        <button type="submit" disabled={form.busy}>
          Add user
        </button>
        <FormError state={form} />
      </form>
      {error && <p className="error">{error}</p>}
      <Table head={["User", "Role", "Sites", "Since", ""]} caption="Users">
        {items.map((u) => (
          <tr key={u.id}>
            <td>{u.username}</td>
            <td>{u.role}</td>
            <td>
              <SitesCell user={u} onDone={reload} />
            </td>
            <td>{new Date(u.created_at).toLocaleDateString()}</td>
            <td>
              <DeleteButton path={`/users/${u.id}`} label={`user ${u.username}`} onDone={reload} />
            </td>
          </tr>
        ))}
      </Table>
    </>
  );
}
