import { hash, verify } from '@node-rs/argon2';

// argon2id with the library's defaults (m = 19 MiB, t = 2, p = 1: OWASP's first recommendation).
// A hash carries its own parameters, so stronger settings later still verify older hashes.

/** An argon2id hash of a console password, in PHC string form. */
export function hashPassword(password: string): Promise<string> {
  return hash(password);
}

/** A hash to verify against when the account does not exist, so both answers take as long. */
let decoy: Promise<string> | null = null;

/** True when `password` matches `passwordHash`; false for any malformed hash. */
export async function verifyPassword(passwordHash: string | null, password: string): Promise<boolean> {
  const target = passwordHash ?? (await (decoy ??= hash('labrelay decoy password')));
  try {
    return (await verify(target, password)) && passwordHash !== null;
  } catch {
    return false;
  }
}
