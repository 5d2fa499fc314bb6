import { useState } from "react";
import { api } from "../../api";
import type { Building, Room, Site } from "../../components/lookups";
import { loadBuildingNames } from "../../components/names";
import { DeleteButton, EditableText, FormError, Table, useList, useSubmit } from "./common";
import { Select } from "../../components/Select";

export function Sites() {
  const { items, error, reload } = useList<Site>("/sites");
  const [slug, setSlug] = useState("");
  const [name, setName] = useState("");
  const form = useSubmit(() => api("POST", "/sites", { slug, name }), () => {
    setSlug("");
    setName("");
    reload();
  });
  return (
    <>
      <form className="inline-form" onSubmit={form.submit} aria-label="New site">
        <label>
          Slug (used in topics)
          <input required value={slug} onChange={(e) => setSlug(e.target.value)} aria-invalid={form.field === "slug"} />
        </label>
        <label>
          Name
          <input required value={name} onChange={(e) => setName(e.target.value)} aria-invalid={form.field === "name"} />
        </label>
        <button type="submit" disabled={form.busy}>
          Add site
        </button>
        <FormError state={form} />
      </form>
      {error && <p className="error">{error}</p>}
      <Table head={["Name", "Slug", "Default", ""]} caption="Sites">
        {items.map((s) => (
          <tr key={s.id}>
            <td>
              <EditableText path={`/sites/${s.id}`} field="name" value={s.name} label={`site ${s.name}`} onDone={reload} />
            </td>
            <td className="mono">{s.slug}</td>
            <td>{s.is_default ? "yes" : ""}</td>
            <td>{!s.is_default && <DeleteButton path={`/sites/${s.id}`} label={`site ${s.name}`} onDone={reload} />}</td>
          </tr>
        ))}
      </Table>
    </>
  );
}

export function Buildings() {
  const { items, error, reload } = useList<Building>("/buildings");
  const sites = useList<Site>("/sites").items;
  const [site, setSite] = useState("");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const form = useSubmit(() => api("POST", "/buildings", { site: site || null, name, description }), () => {
    setName("");
    setDescription("");
    void loadBuildingNames(true);
    reload();
  });
  const siteName = (id: string) => sites.find((s) => s.id === id)?.name ?? id;
  return (
    <>
      <form className="inline-form" onSubmit={form.submit} aria-label="New building">
        <Select label="Site" value={site} onChange={setSite} empty="default site" choices={sites.map((x) => ({ value: x.id, label: x.name }))} />
        <label>
          Name
          <input required value={name} onChange={(e) => setName(e.target.value)} aria-invalid={form.field === "name"} />
        </label>
        <label>
          Description
          <input value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
        <button type="submit" disabled={form.busy}>
          Add building
        </button>
        <FormError state={form} />
      </form>
      {error && <p className="error">{error}</p>}
      <Table head={["Name", "Site", "Description", ""]} caption="Buildings">
        {items.map((b) => (
          <tr key={b.id}>
            <td>
              <EditableText
                path={`/buildings/${b.id}`}
                field="name"
                value={b.name}
                label={`building ${b.name}`}
                onDone={() => {
                  void loadBuildingNames(true);
                  reload();
                }}
              />
            </td>
            <td>{siteName(b.site)}</td>
            <td>{b.description}</td>
            <td>
              <DeleteButton path={`/buildings/${b.id}`} label={`building ${b.name}`} onDone={reload} />
            </td>
          </tr>
        ))}
      </Table>
    </>
  );
}

export function Rooms() {
  const { items, error, reload } = useList<Room>("/rooms");
  const buildings = useList<Building>("/buildings").items;
  const [building, setBuilding] = useState("");
  const [name, setName] = useState("");
  const [topic, setTopic] = useState("");
  const form = useSubmit(
    () => api("POST", "/rooms", { building, name, description: "", topic: topic || null }),
    () => {
      setName("");
      setTopic("");
      reload();
    },
  );
  const buildingName = (id: string) => buildings.find((b) => b.id === id)?.name ?? id;
  return (
    <>
      <form className="inline-form" onSubmit={form.submit} aria-label="New room">
        <Select label="Building" required value={building} onChange={setBuilding} empty="choose…" choices={buildings.map((b) => ({ value: b.id, label: b.name }))} />
        <label>
          Name
          <input required value={name} onChange={(e) => setName(e.target.value)} aria-invalid={form.field === "name"} />
        </label>
        <label>
          Base topic (optional, else derived)
          <input value={topic} placeholder="u4/302" onChange={(e) => setTopic(e.target.value)} aria-invalid={form.field === "topic"} />
        </label>
        <button type="submit" disabled={form.busy}>
          Add room
        </button>
        <FormError state={form} />
      </form>
      {error && <p className="error">{error}</p>}
      <Table head={["Building", "Room", "Base topic", "Devices", ""]} caption="Rooms">
        {items.map((r) => (
          <tr key={r.id}>
            <td>{buildingName(r.building)}</td>
            <td>
              <EditableText path={`/rooms/${r.id}`} field="name" value={r.name} label={`room ${r.name}`} onDone={reload} />
            </td>
            <td className="mono">{r.base_topic}</td>
            <td>{r.devices}</td>
            <td>
              <DeleteButton path={`/rooms/${r.id}`} label={`room ${r.name}`} onDone={reload} />
            </td>
          </tr>
        ))}
      </Table>
    </>
  );
}
