// The device table: filters (kept in the URL), sortable columns, pages of 50, relative "last
// seen", and columns the operator chooses — built-in ones and any field of the last status
// payload — saved per user on the server.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { api, query, type Device, type Page } from "../api";
import { usePolled, useNow } from "../lib/hooks";
import { hrefOf, navigate } from "../lib/router";
import { relativeTime, absoluteTime } from "../lib/time";
import { formatValue, getPath, leafPaths } from "../lib/jsonPath";
import { STATE_LABEL } from "../lib/fleet";
import {
  BUILTIN,
  addStatusColumn,
  columnLabel,
  moveColumn,
  parseColumns,
  sortKeyOf,
  statusPath,
  toggleBuiltin,
  type BuiltinKey,
  type ColumnKey,
} from "../lib/columns";
import { useLookups, roomLabel, type Lookups } from "../components/lookups";
import { Select } from "../components/Select";
import { BulkImport } from "../components/BulkImport";
import { BulkAction } from "../components/BulkAction";
import { can, useSession } from "../session";

const PAGE = 50;
const FILTERS = ["site", "building", "room", "type", "state", "q", "sort", "page"] as const;

function Cell({ device, column, lookups, now }: { device: Device; column: ColumnKey; lookups: Lookups; now: number }) {
  const path = statusPath(column);
  if (path !== null) {
    const v = getPath(device.last_payload, path);
    return <td className="mono" title={v === undefined ? "not in the last status" : JSON.stringify(v)}>{formatValue(v)}</td>;
  }
  switch (column as BuiltinKey) {
    case "uid":
      return (
        <td>
          <a href={hrefOf(["devices", device.uid])} className="mono">
            {device.uid}
          </a>
        </td>
      );
    case "type":
      return <td>{device.type}</td>;
    case "room":
      return <td>{device.rooms[0] ? roomLabel(lookups, device.rooms[0].id) || device.rooms[0].name : "—"}</td>;
    case "state":
      return (
        <td>
          <span className={`badge ${device.state}`}>{STATE_LABEL[device.state]}</span>
        </td>
      );
    case "last_seen":
      return <td title={absoluteTime(device.last_seen)}>{relativeTime(device.last_seen, now)}</td>;
    case "description":
      return <td>{device.description}</td>;
    case "last_status":
      return <td>{device.last_status ?? "—"}</td>;
    case "credentials":
      return <td>{device.credentials_delivered ? "delivered" : "waiting for the device"}</td>;
  }
  return <td />;
}

export function Devices({ params }: { params: URLSearchParams }) {
  const lookups = useLookups();
  const now = useNow();
  const [columns, setColumns] = useState<ColumnKey[] | null>(null);
  const [settings, setSettings] = useState<Record<string, unknown>>({});
  const [newPath, setNewPath] = useState("");
  const [columnError, setColumnError] = useState<string | null>(null);
  const [showChooser, setShowChooser] = useState(false);
  const [text, setText] = useState(params.get("q") ?? "");

  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? undefined])) as Record<(typeof FILTERS)[number], string | undefined>;
  const page = Math.max(0, Number(filters.page ?? 0) || 0);
  const path = `/devices${query({
    site: filters.site,
    building: filters.building,
    room: filters.room,
    type: filters.type,
    state: filters.state,
    q: filters.q,
    sort: filters.sort,
    limit: PAGE,
    offset: page * PAGE,
  })}`;
  const { data, error } = usePolled<Page>(path, 5_000);
  const operator = can(useSession(), "operator");
  const exportQuery = query({
    site: filters.site,
    building: filters.building,
    room: filters.room,
    type: filters.type,
    state: filters.state,
    q: filters.q,
  });

  useEffect(() => {
    api<Record<string, unknown>>("GET", "/session/settings")
      .then((s) => {
        setSettings(s);
        setColumns(parseColumns((s.devices as { columns?: unknown } | undefined)?.columns));
      })
      .catch(() => setColumns(parseColumns(null)));
  }, []);

  const saveColumns = (next: ColumnKey[]) => {
    setColumns(next);
    const merged = { ...settings, devices: { ...((settings.devices as object) ?? {}), columns: next } };
    setSettings(merged);
    void api("PUT", "/session/settings", merged).catch((e) => setColumnError(`not saved: ${e.message}`));
  };

  const setFilter = (key: string, value: string | undefined) => {
    const next: Record<string, string | undefined> = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? undefined]));
    next[key] = value || undefined;
    if (key !== "page") next.page = undefined;
    navigate(["devices"], next, true);
  };

  const suggestions = useMemo(() => {
    const set = new Set<string>();
    for (const d of data?.items ?? []) for (const p of leafPaths(d.last_payload)) set.add(p);
    return [...set].sort();
  }, [data]);

  const addColumn = (e: FormEvent) => {
    e.preventDefault();
    if (!columns) return;
    const result = addStatusColumn(columns, newPath);
    if (typeof result === "string") {
      setColumnError(result);
      return;
    }
    setColumnError(null);
    setNewPath("");
    saveColumns(result);
  };

  const sort = filters.sort ?? "uid";
  const sortBy = (key: string) => setFilter("sort", sort === key ? `-${key}` : key);
  const buildings = lookups.buildings.filter((b) => !filters.site || lookups.sites.find((s) => s.slug === filters.site || s.id === filters.site)?.id === b.site);
  const rooms = lookups.rooms.filter((r) => !filters.building || r.building === filters.building);
  const total = data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / PAGE));

  return (
    <section aria-labelledby="devices-title">
      <h1 id="devices-title">Devices</h1>
      <form
        className="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter("q", text);
        }}
      >
        <Select label="Site" value={filters.site ?? ""} onChange={(v) => setFilter("site", v)} empty="all" choices={lookups.sites.map((x) => ({ value: x.slug, label: x.name }))} />
        <Select label="Building" value={filters.building ?? ""} onChange={(v) => setFilter("building", v)} empty="all" choices={buildings.map((b) => ({ value: b.id, label: b.name }))} />
        <Select label="Room" value={filters.room ?? ""} onChange={(v) => setFilter("room", v)} empty="all" choices={rooms.map((r) => ({ value: r.id, label: roomLabel(lookups, r.id) }))} />
        <Select label="Type" value={filters.type ?? ""} onChange={(v) => setFilter("type", v)} empty="all" choices={lookups.types.map((t) => ({ value: t.name, label: t.name }))} />
        <Select label="State" value={filters.state ?? ""} onChange={(v) => setFilter("state", v)} empty="all" choices={Object.entries(STATE_LABEL).map(([k, v]) => ({ value: k, label: v }))} />
        <label>
          Search
          <input type="search" value={text} placeholder="MAC, login, description" onChange={(e) => setText(e.target.value)} />
        </label>
        <button type="submit">Search</button>
        <button type="button" className="secondary" aria-expanded={showChooser} onClick={() => setShowChooser((s) => !s)}>
          Columns
        </button>
      </form>

      {showChooser && columns && (
        <fieldset className="chooser">
          <legend>Columns</legend>
          <div className="builtin-columns">
            {(Object.keys(BUILTIN) as BuiltinKey[]).map((k) => (
              <label key={k} className="check">
                <input type="checkbox" checked={columns.includes(k)} onChange={() => saveColumns(toggleBuiltin(columns, k))} />
                {BUILTIN[k].label}
              </label>
            ))}
          </div>
          <ol className="column-order">
            {columns.map((c) => (
              <li key={c}>
                {columnLabel(c)}
                <button type="button" className="link" aria-label={`Move ${columnLabel(c)} left`} onClick={() => saveColumns(moveColumn(columns, c, -1))}>
                  ←
                </button>
                <button type="button" className="link" aria-label={`Move ${columnLabel(c)} right`} onClick={() => saveColumns(moveColumn(columns, c, 1))}>
                  →
                </button>
                {statusPath(c) !== null && (
                  <button type="button" className="link" aria-label={`Remove column ${columnLabel(c)}`} onClick={() => saveColumns(columns.filter((x) => x !== c))}>
                    remove
                  </button>
                )}
              </li>
            ))}
          </ol>
          <form onSubmit={addColumn} className="add-column">
            <label>
              Status field
              <input list="status-fields" value={newPath} placeholder="heap, firmware, modules.0.name" onChange={(e) => setNewPath(e.target.value)} aria-describedby="column-error" />
            </label>
            <datalist id="status-fields">
              {suggestions.map((s) => (
                <option key={s} value={s} />
              ))}
            </datalist>
            <button type="submit">Add column</button>
            <span id="column-error" className="error" role="alert">
              {columnError}
            </span>
          </form>
        </fieldset>
      )}

      {error && <p className="error" role="alert">Cannot load devices: {error}</p>}
      <p className="count" aria-live="polite">
        {data ? `${total} device${total === 1 ? "" : "s"}` : "Loading…"}
      </p>
      <div className="table-wrap">
        <table className="devices">
          <thead>
            <tr>
              {(columns ?? []).map((c) => {
                const key = sortKeyOf(c);
                const active = sort === key ? "ascending" : sort === `-${key}` ? "descending" : undefined;
                return (
                  <th key={c} scope="col" aria-sort={active ?? "none"}>
                    {key ? (
                      <button type="button" className="link sort" onClick={() => sortBy(key)}>
                        {columnLabel(c)} {active === "ascending" ? "▲" : active === "descending" ? "▼" : ""}
                      </button>
                    ) : (
                      columnLabel(c)
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {data?.items.map((d) => (
              <tr key={d.id} className={`row-${d.state}`} data-uid={d.uid} data-state={d.state}>
                {(columns ?? []).map((c) => (
                  <Cell key={c} device={d} column={c} lookups={lookups} now={now} />
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={page === 0} onClick={() => setFilter("page", String(page - 1))}>
          Previous
        </button>
        <span>
          page {page + 1} of {pages}
        </span>
        <button type="button" disabled={page + 1 >= pages} onClick={() => setFilter("page", String(page + 1))}>
          Next
        </button>
      </nav>
      <p className="exports">
        Export the {total} devices of this filter:{" "}
        <a href={`/api/v1/devices/export.csv${exportQuery}`} download="devices.csv">
          CSV
        </a>{" "}
        ·{" "}
        <a href={`/api/v1/devices/export.json${exportQuery}`} download="devices.json">
          JSON
        </a>
      </p>
      {operator && (
        <BulkAction
          target={{ site: filters.site, building: filters.building, room: filters.room, type: filters.type, state: filters.state, q: filters.q }}
          lookups={lookups}
        />
      )}
      {operator && <BulkImport onImported={() => setFilter("page", "0")} />}
    </section>
  );
}
