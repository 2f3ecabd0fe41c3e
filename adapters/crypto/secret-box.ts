import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { OutboundAuth } from '../../domain/outbound.ts';

/**
 * Encrypts a secret at rest with AES-256-GCM under the master key. The output is
 * `v1.{iv}.{tag}.{ciphertext}` in base64url; the associated data binds it to its owner (e.g. a
 * connection id), so a ciphertext copied to another row does not decrypt.
 */
export function sealSecret(masterKey: Buffer, plaintext: string, associatedData: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [
    'v1',
    iv.toString('base64url'),
    cipher.getAuthTag().toString('base64url'),
    ciphertext.toString('base64url'),
  ].join('.');
}

export function openSecret(masterKey: Buffer, sealed: string, associatedData: string): string {
  const [version, iv, tag, ciphertext] = sealed.split('.');
  if (version !== 'v1' || !iv || !tag || ciphertext === undefined) throw new Error('not a sealed secret');
  const decipher = createDecipheriv('aes-256-gcm', masterKey, Buffer.from(iv, 'base64url'));
  decipher.setAAD(Buffer.from(associatedData, 'utf8'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString(
    'utf8',
  );
}

/** The associated data of a connection's outbound authentication: it decrypts only on its own row. */
const connectionAuthData = (connectionId: string) => `connection/${connectionId}`;

/** Seals a connection's outbound authentication (client secret, token, key) for `auth_encrypted`. */
export function sealConnectionAuth(masterKey: Buffer, connectionId: string, auth: OutboundAuth): string {
  return sealSecret(masterKey, JSON.stringify(auth), connectionAuthData(connectionId));
}

/** A connection's outbound authentication, opened; null when it has none. */
export function openConnectionAuth(
  masterKey: Buffer,
  connection: { id: string; auth_encrypted: string | null },
): OutboundAuth | null {
  if (!connection.auth_encrypted) return null;
  return JSON.parse(
    openSecret(masterKey, connection.auth_encrypted, connectionAuthData(connection.id)),
  ) as OutboundAuth;
}

/** A webhook destination's signing secret, sealed for `secret_encrypted` and opened from it. */
export function sealConnectionSecret(masterKey: Buffer, connectionId: string, secret: string): string {
  return sealSecret(masterKey, secret, `${connectionAuthData(connectionId)}/secret`);
}

export function openConnectionSecret(
  masterKey: Buffer,
  connection: { id: string; secret_encrypted: string | null },
): string | null {
  if (!connection.secret_encrypted) return null;
  return openSecret(masterKey, connection.secret_encrypted, `${connectionAuthData(connection.id)}/secret`);
}
