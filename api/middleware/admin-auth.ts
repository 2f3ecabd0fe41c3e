import { timingSafeEqual, createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';

/** Platform admin calls: `Authorization: Bearer $LABRELAY_ADMIN_TOKEN`, compared in constant time. */
export function adminAuth(): MiddlewareHandler<AppEnv> {
  return async function adminAuthMiddleware(c, next) {
    const header = c.req.header('authorization');
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match)
      throw new AppError(
        'unauthorized',
        'the admin token is required: Authorization: Bearer $LABRELAY_ADMIN_TOKEN',
      );
    if (!isAdminToken(match[1]!, c.get('services').config.adminToken))
      throw new AppError('unauthorized', 'the admin token is not valid');
    await next();
  };
}

export function isAdminToken(candidate: string, adminToken: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(candidate), digest(adminToken));
}
