// Status payloads grow with each firmware: operators pick fields by path (`heap`,
// `modules.0.name`, `wifi.rssi`) instead of the dashboard knowing them in advance.

/** A path is dot-separated keys; a numeric key indexes an array. */
export function isValidPath(path: string): boolean {
  return /^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$/.test(path);
}

/** The value at `path` in `value`, or undefined when any step is missing. */
export function getPath(value: unknown, path: string): unknown {
  let current: unknown = value;
  for (const key of path.split(".")) {
    if (current === null || current === undefined) return undefined;
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(key)) return undefined;
      current = current[Number(key)];
    } else if (typeof current === "object") {
      if (!Object.prototype.hasOwnProperty.call(current, key)) return undefined;
      current = (current as Record<string, unknown>)[key];
    } else {
      return undefined;
    }
  }
  return current;
}

/** A value for a table cell: scalars as they are, structures as short JSON. */
export function formatValue(value: unknown, max = 60): string {
  if (value === undefined) return "—";
  if (value === null) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Every path of scalar leaves in a payload (to suggest columns), arrays to depth 1. */
export function leafPaths(value: unknown, prefix = "", depth = 0, out: string[] = []): string[] {
  if (depth > 4 || out.length > 200) return out;
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.slice(0, 3).map((v, i) => [String(i), v] as const) : Object.entries(value);
    for (const [k, v] of entries) leafPaths(v, prefix ? `${prefix}.${k}` : k, depth + 1, out);
  } else if (prefix) {
    out.push(prefix);
  }
  return out;
}
