// Helpers of the Audit page: the query string of its filters, and how an entry reads.
import type { AuditEntry } from "../api";

export type AuditFilters = { action: string; actor: string; target: string };

/** The query of a page: the filters that are set, the page size, and where the page starts. */
export function auditQuery(filters: AuditFilters, before: number | null, limit = 50): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) {
    if (v.trim()) params.set(k, v.trim());
  }
  params.set("limit", String(limit));
  if (before !== null) params.set("before", String(before));
  return `/audit?${params.toString()}`;
}

/** A value before or after a change, short: JSON, with absent values as "—". */
export function changeValue(v: unknown): string {
  if (v === null || v === undefined) return "—";
  const text = typeof v === "string" ? v : JSON.stringify(v);
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

/** Who, as a person reads it: "alice", "token ci", "gateway 0190…", "device 24:0A:…". */
export function actorLabel(e: AuditEntry): string {
  const { kind, name } = e.actor;
  return kind === "user" ? name : `${kind} ${name}`;
}
