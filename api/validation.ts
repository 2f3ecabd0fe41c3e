import type { Hook } from '@hono/zod-openapi';
import { AppError } from './errors.ts';

/** The contract's 400 for a schema failure, with one detail per failing path. */
export function schemaFailure(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): AppError {
  return new AppError(
    'invalid_request',
    `the request is not valid: ${issues.map((i) => `${i.path.map(String).join('.') || '(body)'}: ${i.message}`).join('; ')}`,
    issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
  );
}

/** Turns a schema failure into the contract's 400 with one detail per failing path. */
export const validationHook: Hook<unknown, any, any, unknown> = (result) => {
  if (result.success) return;
  throw schemaFailure((result.error as { issues: { path: PropertyKey[]; message: string }[] }).issues);
};
