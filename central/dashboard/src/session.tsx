// Who is signed in, and what they may do. Viewers read; operators also send orders and edit
// devices; admins also edit the registry's structure.
import { createContext, useContext } from "react";
import type { Role, Session } from "./api";

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function can(session: Session | null, role: Role): boolean {
  return session !== null && RANK[session.role] >= RANK[role];
}

/** Whether the session's role reaches the whole campus (not only some sites). */
export function campusWide(session: Session | null): boolean {
  return session !== null && (session.sites?.length ?? 0) === 0;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session | null {
  return useContext(SessionContext);
}
