// The dashboard's only door to central: JSON over /api/v1 with the session cookie, the CSRF
// token on every change, and the API's JSON errors turned into ApiError.

export type Role = "viewer" | "operator" | "admin";
export type DeviceState = "ok" | "outdated" | "never_seen" | "disabled";

export interface Session {
  user_id: string;
  username: string;
  role: Role;
  csrf_token: string;
}

export interface RoomRef {
  id: string;
  building: string;
  site: string | null;
  name: string;
  base_topic: string | null;
}

export interface Device {
  id: string;
  uid: string;
  uid_kind: string;
  type: string;
  type_id: string;
  description: string;
  rooms: RoomRef[];
  base_topic: string | null;
  enabled: boolean;
  config: unknown;
  mqtt: { server: string; port: number } | null;
  login: string;
  credentials_delivered: boolean;
  outdated_after_s: number | null;
  effective_outdated_after_s: number;
  state: DeviceState;
  last_seen: string | null;
  last_status: string | null;
  last_payload: unknown;
  created_at: string;
  updated_at: string;
  lorawan: unknown;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Counts {
  ok: number;
  outdated: number;
  never_seen: number;
  disabled: number;
}

export interface FleetSummary {
  total: Counts;
  unplaced: Counts;
  sites: {
    id: string;
    slug: string;
    name: string;
    counts: Counts;
    buildings: { id: string; name: string; counts: Counts; rooms: { id: string; name: string; counts: Counts }[] }[];
  }[];
}

export interface Alert {
  id: number;
  kind: "outage" | "failure";
  building: string | null;
  device: string | null;
  rule: string | null;
  detail: string | null;
  outdated: number;
  total_devices: number;
  opened_at: number;
  resolved_at: number | null;
  ack: { by: string; at: number; silenced_until: number | null } | null;
  devices: string[];
  state: "open" | "resolved";
}

export interface OrderRecord {
  at: number;
  by: string;
  order: string;
  value: string | null;
  module: string;
  dest: string;
  topic: string;
  payload: string;
  outcome: string;
}

/** An error answered by central: `{"error": {"code", "message", "field"?, "details"?}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly details?: string[],
  ) {
    super(message);
  }
}

let csrfToken = "";

/** Set after sign-in (and on reload, from GET /session): sent with every change. */
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

async function errorOf(response: Response): Promise<ApiError> {
  try {
    const body = await response.json();
    const e = body?.error ?? {};
    return new ApiError(response.status, e.code ?? "error", e.message ?? response.statusText, e.field, e.details);
  } catch {
    return new ApiError(response.status, "error", `${response.status} ${response.statusText}`);
  }
}

/** Called when central says the session is gone (401): the app shows the sign-in form. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(handler: () => void): void {
  onSignedOut = handler;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && path !== "/session") onSignedOut();
    throw error;
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** GET with an ETag: `null` when unchanged since `etag` (304). */
export async function getIfChanged<T>(path: string, etag: string | null): Promise<{ data: T; etag: string | null } | null> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(`/api/v1${path}`, { headers, credentials: "same-origin" });
  if (response.status === 304) return null;
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) onSignedOut();
    throw error;
  }
  return { data: (await response.json()) as T, etag: response.headers.get("ETag") };
}

/** Query string from the defined, non-empty entries of `params`. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
