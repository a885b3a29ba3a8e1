// The login session, kept per browser tab (sessionStorage): a reload keeps it, closing the
// tab ends it, and another tab can be another person at a shared desk.
import type { LoginResult, Staff } from './types';

export interface Session {
  token: string;
  expiresAt: string;
  staff: Staff;
}

const KEY = 'servicehub.console.session';

export function loadSession(): Session | null {
  try {
    const session = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Session | null;
    return session && Date.parse(session.expiresAt) > Date.now() ? session : null;
  } catch {
    return null;
  }
}

export function saveSession(result: LoginResult): Session {
  const session = { token: result.token, expiresAt: result.expires_at, staff: result.staff };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

/** Who may do what, from docs/console-contract.md "Roles and permissions". */
export const may = {
  handleConversations: (staff: Staff) => staff.role !== 'editor',
  reveal: (staff: Staff) => staff.role === 'supervisor' || staff.role === 'admin',
  supervise: (staff: Staff) => staff.role === 'supervisor' || staff.role === 'admin',
  // Agents: their conversation's customer with a suggested match; supervisors, admins: any.
  merge: (staff: Staff) => staff.role !== 'editor',
};
