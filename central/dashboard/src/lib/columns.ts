// The device table's columns: built-in ones, and any JSON path into the last status payload
// (`status:heap`). The choice is saved per user on the server, as a list of column keys.
import { isValidPath } from "./jsonPath";

export const BUILTIN = {
  uid: { label: "Device", sort: "uid" },
  type: { label: "Type", sort: "type" },
  room: { label: "Room", sort: "room" },
  state: { label: "State", sort: "state" },
  last_seen: { label: "Last seen", sort: "last_seen" },
  description: { label: "Description", sort: "description" },
  last_status: { label: "Status", sort: null },
  credentials: { label: "Credentials", sort: null },
} as const;

export type BuiltinKey = keyof typeof BUILTIN;
export type ColumnKey = BuiltinKey | `status:${string}`;

export const DEFAULT_COLUMNS: ColumnKey[] = ["uid", "type", "room", "state", "last_seen", "description"];

export function isBuiltin(key: string): key is BuiltinKey {
  return Object.prototype.hasOwnProperty.call(BUILTIN, key);
}

export function statusPath(key: ColumnKey): string | null {
  return key.startsWith("status:") ? key.slice("status:".length) : null;
}

export function columnLabel(key: ColumnKey): string {
  return isBuiltin(key) ? BUILTIN[key].label : key.slice("status:".length);
}

export function sortKeyOf(key: ColumnKey): string | null {
  return isBuiltin(key) ? BUILTIN[key].sort : null;
}

/** The saved columns, keeping only valid keys, once each; the defaults when nothing valid. */
export function parseColumns(saved: unknown): ColumnKey[] {
  if (!Array.isArray(saved)) return [...DEFAULT_COLUMNS];
  const out: ColumnKey[] = [];
  for (const k of saved) {
    if (typeof k !== "string" || out.includes(k as ColumnKey)) continue;
    if (isBuiltin(k)) out.push(k);
    else if (k.startsWith("status:") && isValidPath(k.slice(7))) out.push(k as ColumnKey);
  }
  return out.length ? out : [...DEFAULT_COLUMNS];
}

/** Adds a status field column for `path`; an error text when the path is not usable. */
export function addStatusColumn(columns: ColumnKey[], path: string): ColumnKey[] | string {
  const p = path.trim();
  if (!isValidPath(p)) return "a field name or a dotted path such as heap or modules.0.name";
  const key: ColumnKey = `status:${p}`;
  if (columns.includes(key)) return `the column ${p} is shown already`;
  return [...columns, key];
}

export function toggleBuiltin(columns: ColumnKey[], key: BuiltinKey): ColumnKey[] {
  if (columns.includes(key)) {
    const rest = columns.filter((c) => c !== key);
    return rest.length ? rest : columns;
  }
  return [...columns, key];
}

export function moveColumn(columns: ColumnKey[], key: ColumnKey, by: -1 | 1): ColumnKey[] {
  const i = columns.indexOf(key);
  const j = i + by;
  if (i < 0 || j < 0 || j >= columns.length) return columns;
  const out = [...columns];
  [out[i], out[j]] = [out[j], out[i]];
  return out;
}
