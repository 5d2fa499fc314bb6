// The dashboard's only door to central: JSON over /api/v1 with the session cookie, the CSRF
// token on every change, and the API's JSON errors turned into ApiError.

import type { components } from "./generated/api";

// The API's types are generated from its OpenAPI document (src/generated/api.d.ts, by
// scripts/gen-api-types; CI checks they are up to date), so a change in central's answers shows
// up here as a type error. Only the answers the document leaves untyped are written by hand.
type Schemas = components["schemas"];

export type Role = Schemas["Role"];
export type DeviceState = Schemas["DeviceState"];
export type Session = Schemas["SessionView"];
export type Site = Schemas["Site"];
export type Building = Schemas["Building"];
export type Room = Schemas["RoomView"];
export type DeviceType = Schemas["TypeView"];
export type Device = Schemas["DeviceView"];
/** One page of the device listing (`GET /devices`). */
export type Page = Schemas["Page"];
export type Counts = Schemas["StateCounts"];
export type FleetSummary = Schemas["FleetSummary"];
export type Gateway = Schemas["GatewayView"];
/** A gateway with what central knows of its health (`GET /gateways`). */
export type GatewayWithHealth = Schemas["GatewayWithHealth"];
export type ForwarderHealth = Schemas["ForwarderHealth"];
/** A gateway's settings set in central, and what it reports it runs with. */
export type ManagedConfig = Schemas["ManagedConfig"];
/** An unregistered MAC that asked for its credentials (`GET /unclaimed`). */
export type UnclaimedDevice = Schemas["UnclaimedDevice"];
export type User = Schemas["UserView"];
export type OrderRecord = Schemas["OrderRecord"];
export type EnrolmentToken = Schemas["EnrolmentToken"];
export type FirmwareImage = Schemas["ImageView"];
export type Campaign = Schemas["CampaignView"];
export type StageCounts = Schemas["StageCounts"];
export type CampaignDevice = Schemas["CampaignDeviceView"];
export type DeviceCampaign = Schemas["DeviceCampaignView"];
export type Revisions = Schemas["RevisionsView"];
export type RevisionCount = Schemas["RevisionCount"];
export type AuditEntry = Schemas["AuditView"];
export type AuditPage = Schemas["AuditPageView"];
export type ImportReport = Schemas["ImportView"];
export type BulkOperation = Schemas["BulkView"];
export type BulkPreview = Schemas["PreviewView"];

/** The list answers (`{"items": [...]}`), which the document describes as plain objects. */
export interface Items<T> {
  items: T[];
}

/** An alert (`GET /alerts`): written by hand, the document describes it as a plain object. */
export interface Alert {
  id: number;
  kind: "outage" | "failure" | "foreign_delivery" | "forwarder_silent" | "reboot_loop" | "site_disconnected";
  building: string | null;
  device: string | null;
  rule: string | null;
  /** Silent forwarders: the gateway id and the forwarder's gateway EUI. */
  gateway: string | null;
  forwarder: string | null;
  detail: string | null;
  outdated: number;
  total_devices: number;
  opened_at: number;
  resolved_at: number | null;
  ack: { by: string; at: number; silenced_until: number | null } | null;
  devices: string[];
  state: "open" | "resolved";
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

/** Uploads a file as the raw request body (`application/octet-stream`), with the CSRF token. */
export async function upload<T>(path: string, file: Blob): Promise<T> {
  const response = await fetch(`/api/v1${path}`, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/octet-stream", "X-CSRF-Token": csrfToken },
    credentials: "same-origin",
    body: file,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) onSignedOut();
    throw error;
  }
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
