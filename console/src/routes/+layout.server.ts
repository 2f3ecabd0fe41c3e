import type { LayoutServerLoad } from './$types';

/** Who is signed in (for the header) and the session's CSRF token (for every form). */
export const load = (({ locals }) => {
  const user = locals.user;
  return {
    user: user
      ? {
          name: user.name,
          email: user.email,
          platformAdmin: user.platformAdmin,
          passwordGiven: user.passwordGiven,
          roles: user.roles.map((r) => ({
            tenantSlug: r.tenantSlug,
            tenantName: r.tenantName,
            role: r.role,
          })),
        }
      : null,
    csrf: user?.csrfToken ?? null,
  };
}) satisfies LayoutServerLoad;
