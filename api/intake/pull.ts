import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { FhirIntakeError, parseFhirIntake } from '../../adapters/fhir/intake.ts';
import { TokenProvider } from '../../adapters/oauth/token-client.ts';
import { appendAudit } from '../../db/audit.ts';
import type { Connection } from '../../db/schema.ts';
import { findTenantById } from '../../db/tenants.ts';
import type { ConnectionSettings, OutboundAuth } from '../../domain/outbound.ts';
import type { Services } from '../env.ts';
import { openSecret } from '../security/secret-box.ts';
import { storeInbound } from './store.ts';

/** Pages one poll reads at most; the rest waits for the next poll (the cursor has moved). */
const MAX_PAGES = 20;
const PAGE_SIZE = 50;
const DEFAULT_POLL_SECONDS = 60;
const HTTP_TIMEOUT_MS = 30_000;

export interface PullOutcome {
  orders: number;
  pages: number;
  cursor: string | null;
}

/**
 * The pull direction (seed 002 "Lab Ops uses those credentials to read approved resources"): reads
 * a hospital FHIR server's new ServiceRequests, with the connection's credentials and only GET
 * requests, and takes each page in as an inbound message (the orders stored and their workflows
 * started, exactly as if the hospital had sent them). The cursor is the newest `meta.lastUpdated`
 * taken; a page read twice (a crash before the cursor moved) is the same message and stored once.
 */
export async function pullServiceRequests(
  services: Services,
  connection: Connection,
  tokens: TokenProvider,
): Promise<PullOutcome> {
  const tenant = await findTenantById(services.db, connection.tenant_id);
  if (!tenant) throw new Error(`tenant ${connection.tenant_id} does not exist`);
  const base = String((connection.endpoint as { url?: unknown } | null)?.url ?? '').replace(/\/+$/, '');
  const settings = connection.settings as ConnectionSettings;
  const auth: OutboundAuth = connection.auth_encrypted
    ? (JSON.parse(
        openSecret(services.config.masterKey, connection.auth_encrypted, `connection/${connection.id}`),
      ) as OutboundAuth)
    : { type: 'none' };

  let cursor = connection.pull_cursor;
  const first = new URL(`${base}/ServiceRequest`);
  for (const [k, v] of new URLSearchParams(settings.pullQuery ?? '')) first.searchParams.append(k, v);
  if (cursor) first.searchParams.set('_lastUpdated', `gt${cursor}`);
  first.searchParams.set('_sort', '_lastUpdated');
  first.searchParams.set('_count', String(PAGE_SIZE));
  first.searchParams.set('_include', 'ServiceRequest:subject');

  let next: string | null = first.toString();
  let orders = 0;
  let pages = 0;
  while (next && pages < MAX_PAGES) {
    const page = await getJson(next, connection.id, auth, tokens);
    pages += 1;
    const entries = Array.isArray(page.entry)
      ? (page.entry as { fullUrl?: string; resource?: Record<string, unknown> }[])
      : [];
    const requests = entries.filter((e) => e.resource?.resourceType === 'ServiceRequest');
    if (requests.length > 0) {
      const bundle = {
        resourceType: 'Bundle',
        type: 'collection',
        entry: entries
          .filter((e) => e.resource)
          .map((e) => ({ ...(e.fullUrl ? { fullUrl: e.fullUrl } : {}), resource: e.resource })),
      };
      const raw = JSON.stringify(bundle);
      let intake;
      try {
        intake = parseFhirIntake(bundle);
      } catch (error) {
        if (!(error instanceof FhirIntakeError)) throw error;
        const why = error.outcome.issue.map((i) => i.diagnostics ?? i.code).join('; ');
        throw new Error(`the ServiceRequests read from ${base} cannot be taken: ${why}`, { cause: error });
      }
      const contentHash = createHash('sha256').update(raw).digest('hex');
      await storeInbound(
        services,
        {
          tenant,
          transport: 'pull',
          format: 'fhir',
          messageType: 'ServiceRequest/pull',
          sender: `pull:${connection.id}`,
          controlId: `sha256:${contentHash}`,
          idempotencyKey: null,
          contentHash,
          raw,
          credentialId: null,
          connectionId: connection.id,
          orderNamespace: tenant.slug,
        },
        { results: intake.results, orders: intake.orders, patients: intake.patients },
        () => ({ response: '', status: 200 }),
      );
      orders += intake.orders.reduce((n, o) => n + o.orders.length, 0);
      for (const e of requests) {
        const updated = (e.resource?.meta as { lastUpdated?: unknown } | undefined)?.lastUpdated;
        if (typeof updated === 'string' && (!cursor || Date.parse(updated) > Date.parse(cursor)))
          cursor = updated;
      }
      await services.db
        .updateTable('connections')
        .set({ pull_cursor: cursor })
        .where('id', '=', connection.id)
        .execute();
    }
    const link = Array.isArray(page.link) ? (page.link as { relation?: string; url?: string }[]) : [];
    next = link.find((l) => l.relation === 'next')?.url ?? null;
    // Only follow pages of the same server: a link elsewhere would take our token with it.
    if (next && new URL(next).origin !== new URL(base).origin) next = null;
  }
  return { orders, pages, cursor };
}

async function getJson(
  url: string,
  key: string,
  auth: OutboundAuth,
  tokens: TokenProvider,
): Promise<Record<string, unknown>> {
  for (let attempt = 0; ; attempt++) {
    const authorization = await tokens.authorization(key, auth);
    const response = await fetch(url, {
      headers: { accept: 'application/fhir+json', ...(authorization ? { authorization } : {}) },
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
      redirect: 'manual',
    });
    if (response.status === 401 && attempt === 0 && auth.type !== 'none') {
      tokens.invalidate(key);
      continue;
    }
    const text = await response.text();
    if (!response.ok) throw new Error(`${url} answered ${response.status}: ${text.slice(0, 300)}`);
    const body = JSON.parse(text) as Record<string, unknown>;
    if (body.resourceType !== 'Bundle') throw new Error(`${url} did not answer a Bundle`);
    return body;
  }
}

/**
 * Polls every enabled pull connection when it is due (its interval since the last poll). A
 * connection is claimed with `FOR UPDATE SKIP LOCKED`, so several LabRelay instances never poll
 * the same one at once. A failed poll is logged and audited, and tried again at the next interval.
 */
export function runPullers(services: Services, tickMs = 5_000): { stop(): Promise<void> } {
  const tokens = new TokenProvider();
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  async function tick() {
    const due = await services.db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('connections')
        .selectAll()
        .where('direction', '=', 'pull')
        .where('format', '=', 'fhir')
        .where('disabled_at', 'is', null)
        .where((eb) =>
          eb.or([
            eb('last_polled_at', 'is', null),
            eb(
              'last_polled_at',
              '<=',
              sql<Date>`now() - make_interval(secs => coalesce((settings->>'pollIntervalSeconds')::int, ${DEFAULT_POLL_SECONDS}))`,
            ),
          ]),
        )
        .forUpdate()
        .skipLocked()
        .limit(10)
        .execute();
      const pollable = rows.filter((r) => {
        if (!r.auth_encrypted) return true;
        const auth = JSON.parse(
          openSecret(services.config.masterKey, r.auth_encrypted, `connection/${r.id}`),
        ) as OutboundAuth;
        // A SMART launch client reads only for a person in the EHR; it is never polled.
        return auth.type !== 'smart_launch';
      });
      if (rows.length > 0)
        await trx
          .updateTable('connections')
          .set({ last_polled_at: new Date() })
          .where(
            'id',
            'in',
            rows.map((r) => r.id),
          )
          .execute();
      return pollable;
    });
    for (const connection of due) {
      if (stopped) return;
      try {
        const outcome = await pullServiceRequests(services, connection, tokens);
        if (outcome.orders > 0)
          services.logger.info(
            { tenantId: connection.tenant_id, connectionId: connection.id, ...outcome },
            'pulled orders',
          );
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        services.logger.warn(
          { tenantId: connection.tenant_id, connectionId: connection.id, error: message },
          'pull failed',
        );
        await services.db.transaction().execute((trx) =>
          appendAudit(trx, {
            tenantId: connection.tenant_id,
            actor: 'puller',
            action: 'connection.pull_failed',
            subject: `connection/${connection.id}`,
            details: { error: message.slice(0, 1000) },
          }),
        );
      }
    }
  }
  const timer = setInterval(() => {
    running = running
      .then(tick)
      .catch((error: unknown) => services.logger.error({ err: error }, 'puller tick failed'));
  }, tickMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
