import { useState } from "react";
import { api, type Role, type User } from "../../api";
import { DeleteButton, FormError, Table, useList, useSubmit } from "./common";
import { Select } from "../../components/Select";

export function Users() {
  const { items, error, reload } = useList<User>("/users");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [sites, setSites] = useState("");
  const siteList = () => sites.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const form = useSubmit(() => api("POST", "/users", { username, password, role, sites: siteList() }), () => {
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
            <td>{u.sites.length === 0 ? "whole campus" : u.sites.join(", ")}</td>
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
