/**
 * Who may do what in the console. A person holds roles per tenant; a platform administrator may do
 * everything everywhere. Every console page load and every form action asks `mayAct` again: what a
 * page showed is never taken as permission.
 */
export const CONSOLE_ROLE = {
  admin: 'admin',
  reviewer: 'reviewer',
  provider: 'provider',
} as const;
export type ConsoleRole = (typeof CONSOLE_ROLE)[keyof typeof CONSOLE_ROLE];
export const CONSOLE_ROLES: readonly ConsoleRole[] = Object.values(CONSOLE_ROLE);

/** What a console action needs, in the lab's words. */
export const CONSOLE_ACTION = {
  /** Connections, credentials, routing rules, critical table, escalation, users, re-send, re-process. */
  configure: 'configure',
  /** The review queue: claim, approve, correct, reject, match patients, manual entry. */
  review: 'review',
  /** Critical results: see the board, acknowledge with read-back. */
  acknowledge: 'acknowledge',
  /** Read results, messages, the audit trail and monitoring. */
  read: 'read',
} as const;
export type ConsoleAction = (typeof CONSOLE_ACTION)[keyof typeof CONSOLE_ACTION];

const ALLOWED: Record<ConsoleAction, readonly ConsoleRole[]> = {
  configure: [CONSOLE_ROLE.admin],
  review: [CONSOLE_ROLE.admin, CONSOLE_ROLE.reviewer],
  acknowledge: [CONSOLE_ROLE.admin, CONSOLE_ROLE.reviewer, CONSOLE_ROLE.provider],
  read: [CONSOLE_ROLE.admin, CONSOLE_ROLE.reviewer, CONSOLE_ROLE.provider],
};

export interface ConsolePrincipal {
  platformAdmin: boolean;
  roles: readonly { tenantId: string; role: ConsoleRole }[];
}

/**
 * True when the person may take `action` in the tenant.
 *
 * @example
 * mayAct({ platformAdmin: false, roles: [{ tenantId: 't1', role: 'reviewer' }] }, 't1', 'review'); // true
 * mayAct({ platformAdmin: false, roles: [{ tenantId: 't1', role: 'reviewer' }] }, 't1', 'configure'); // false
 */
export function mayAct(principal: ConsolePrincipal, tenantId: string, action: ConsoleAction): boolean {
  if (principal.platformAdmin) return true;
  return principal.roles.some((r) => r.tenantId === tenantId && ALLOWED[action].includes(r.role));
}

/**
 * Why a role cannot be given as asked, or null: a provider role names the provider record the
 * person is (it decides which critical results they see), so it cannot be given without one.
 */
export function roleProblem(role: ConsoleRole, providerId: string | null | undefined): string | null {
  if (role === CONSOLE_ROLE.provider && !providerId)
    return 'a provider role names the provider the person is: give providerId (add the provider first)';
  return null;
}

/** The shortest password we take, and the longest (argon2 input stays bounded). */
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 256;

/** Why a new password is refused, or null when it will do. */
export function passwordProblem(password: string, email: string): string | null {
  if (password.length < PASSWORD_MIN) return `a password needs at least ${PASSWORD_MIN} characters`;
  if (password.length > PASSWORD_MAX) return `a password has at most ${PASSWORD_MAX} characters`;
  const name = email.toLowerCase().split('@')[0] ?? '';
  if (name.length >= 4 && password.toLowerCase().includes(name))
    return `a password must not contain the name of the e-mail address ("${name}")`;
  // Long but guessable: one character over and over, or only a couple of them (aaaaaaaaaaaa, abababababab).
  if (new Set(password.toLowerCase()).size < 5) return 'a password needs at least 5 different characters';
  return null;
}

/** E-mail addresses are compared in lower case, with no surrounding space. */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}
