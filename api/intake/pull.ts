import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { FhirIntakeError, parseFhirIntake } from '../../adapters/fhir/intake.ts';
import { TokenProvider } from '../../adapters/oauth/token-client.ts';
import { appendAudit } from '../../db/audit.ts';
import type { Connection } from '../../db/schema.ts';
import { tenantScope } from '../../db/tenant-scope.ts';
import { findTenantById } from '../../db/tenants.ts';
import type { ConnectionSettings, OutboundAuth } from '../../domain/outbound.ts';
import type { Services } from '../env.ts';
import { openSecret } from '../security/secret-box.ts';
import { storeInbound } from './store.ts';

/** Pages one poll reads at most while the server answers in `_lastUpdated` order; the rest waits. */
const MAX_PAGES = 20;
/**
 * Pages one poll reads at most from a server that ignores `_sort`: its cursor can only move after a
 * whole read, so it reads on past MAX_PAGES, to this bound.
 */
const MAX_UNSORTED_PAGES = 500;
const PAGE_SIZE = 50;
const DEFAULT_POLL_SECONDS = 60;
const HTTP_TIMEOUT_MS = 30_000;

export interface PullOutcome {
  orders: number;
  pages: number;
  cursor: string | null;
  /** ServiceRequests that could not be read: audited (`connection.pull_skipped`) and passed over. */
  skipped: number;
  /** Whether the server answered in `_lastUpdated` order, as asked. */
  sorted: boolean;
}

type Entry = { fullUrl?: string; resource?: Record<string, unknown> };

const lastUpdatedOf = (e: Entry): string | null => {
  const updated = (e.resource?.meta as { lastUpdated?: unknown } | undefined)?.lastUpdated;
  return typeof updated === 'string' && !Number.isNaN(Date.parse(updated)) ? updated : null;
};
const idOf = (e: Entry): string => `ServiceRequest/${String(e.resource?.id ?? e.fullUrl ?? '')}`;

/** Every `reference` string inside a resource (subject, encounter, requester, specimen, …). */
function referencesIn(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) referencesIn(v, found);
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') found.add(v);
      else referencesIn(v, found);
    }
  return found;
}

/** Whether a reference (`Patient/1`, an absolute URL, a fullUrl) names this entry. */
function names(reference: string, e: Entry): boolean {
  if (e.fullUrl && (reference === e.fullUrl || e.fullUrl.endsWith(`/${reference}`))) return true;
  const typed = `${String(e.resource?.resourceType)}/${String(e.resource?.id)}`;
  return reference === typed || reference.endsWith(`/${typed}`);
}

/** The ServiceRequests with the page's entries they reference (their patients), as one collection. */
function collection(requests: Entry[], others: Entry[]): Record<string, unknown> {
  const references = new Set(requests.flatMap((r) => [...referencesIn(r.resource)]));
  const referenced = others.filter((e) => [...references].some((ref) => names(ref, e)));
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [...requests, ...referenced].map((e) => ({
      ...(e.fullUrl ? { fullUrl: e.fullUrl } : {}),
      resource: e.resource,
    })),
  };
}

/**
 * The pull direction (seed 002 "Lab Ops uses those credentials to read approved resources"): reads
 * a hospital FHIR server's new ServiceRequests, with the connection's credentials and only GET
 * requests, and takes each page in as an inbound message (the orders stored and their workflows
 * started, exactly as if the hospital had sent them).
 *
 * The cursor is the newest `meta.lastUpdated` taken, read again with `ge` (a ServiceRequest written
 * in the same instant as the last one taken is not missed) beside the ids already taken at that
 * instant (which are not taken twice). The cursor moves at the end of a poll: after up to
 * MAX_PAGES pages read in `_lastUpdated` order, or, from a server that ignores `_sort`, only after
 * a whole read, since an older ServiceRequest may still be on a later page. A ServiceRequest that
 * cannot be read is audited and passed over, so one bad order never holds back the others. A page
 * read twice (a crash before the cursor moved) is the same message and stored once.
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

  const startCursor = connection.pull_cursor;
  const takenAtStart = new Set(startCursor ? connection.pull_cursor_taken : []);
  const first = new URL(`${base}/ServiceRequest`);
  for (const [k, v] of new URLSearchParams(settings.pullQuery ?? '')) first.searchParams.append(k, v);
  if (startCursor) first.searchParams.set('_lastUpdated', `ge${startCursor}`);
  first.searchParams.set('_sort', '_lastUpdated');
  first.searchParams.set('_count', String(PAGE_SIZE));
  first.searchParams.set('_include', 'ServiceRequest:subject');

  // The high-water mark of what was read, and the ids read at exactly that instant.
  let newest = startCursor;
  let atNewest = new Set(takenAtStart);
  let previous: number | null = null;
  let sorted = true;
  const outcome = { orders: 0, pages: 0, skipped: 0 };

  let next: string | null = first.toString();
  while (next && outcome.pages < (sorted ? MAX_PAGES : MAX_UNSORTED_PAGES)) {
    const page = await getJson(next, connection.id, auth, tokens);
    outcome.pages += 1;
    const entries = (Array.isArray(page.entry) ? (page.entry as Entry[]) : []).filter((e) => e.resource);
    const requests = entries.filter((e) => e.resource!.resourceType === 'ServiceRequest');
    const others = entries.filter((e) => e.resource!.resourceType !== 'ServiceRequest');

    const fresh: Entry[] = [];
    for (const e of requests) {
      const updated = lastUpdatedOf(e);
      const at = updated === null ? null : Date.parse(updated);
      if (at !== null) {
        if (previous !== null && at < previous) sorted = false;
        previous = at;
        if (newest === null || at > Date.parse(newest)) {
          newest = updated;
          atNewest = new Set();
        }
        if (at === Date.parse(newest!)) atNewest.add(idOf(e));
      }
      const seenBefore = startCursor !== null && at === Date.parse(startCursor) && takenAtStart.has(idOf(e));
      if (!seenBefore) fresh.push(e);
    }

    // Each ServiceRequest is read alone first, so one that cannot be taken is passed over by itself.
    const readable: Entry[] = [];
    const skipped: { resource: string; lastUpdated: string | null; reason: string }[] = [];
    for (const e of fresh) {
      try {
        parseFhirIntake(collection([e], others));
        readable.push(e);
      } catch (error) {
        if (!(error instanceof FhirIntakeError)) throw error;
        skipped.push({
          resource: idOf(e),
          lastUpdated: lastUpdatedOf(e),
          reason: error.message.slice(0, 1000),
        });
      }
    }
    if (readable.length > 0) {
      const bundle = collection(readable, others);
      const intake = parseFhirIntake(bundle);
      const raw = JSON.stringify(bundle);
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
      outcome.orders += intake.orders.reduce((n, o) => n + o.orders.length, 0);
    }
    outcome.skipped += skipped.length;

    const link = Array.isArray(page.link) ? (page.link as { relation?: string; url?: string }[]) : [];
    next = link.find((l) => l.relation === 'next')?.url ?? null;
    // Only follow pages of the same server: a link elsewhere would take our token with it.
    if (next && new URL(next).origin !== new URL(base).origin) next = null;

    if (skipped.length > 0)
      await services.db.transaction().execute(async (trx) => {
        for (const s of skipped)
          await appendAudit(trx, {
            tenantId: tenant.id,
            actor: 'puller',
            action: 'connection.pull_skipped',
            subject: `connection/${connection.id}`,
            details: { ...s, server: base },
          });
      });
  }

  // In order throughout: nothing older than `newest` is still to come. Out of order: only a whole
  // read says so. Until the cursor moves, a page read again is the same message, stored once.
  let cursor = startCursor;
  if (sorted || next === null) {
    cursor = newest;
    await tenantScope(services.db, tenant.id)
      .updateTable('connections')
      .set({ pull_cursor: newest, pull_cursor_taken: JSON.stringify([...atNewest]) })
      .where('id', '=', connection.id)
      .execute();
  } else
    services.logger.warn(
      { tenantId: tenant.id, connectionId: connection.id, pages: outcome.pages },
      'the FHIR server ignores _sort and has more pages than one poll reads: the cursor stays until a whole read',
    );
  return { ...outcome, cursor, sorted };
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

/** The longest a failing server waits between polls (unless its own interval is longer). */
const MAX_BACKOFF_SECONDS = 3600;

export type PollResult = { connectionId: string } & (
  { ok: true; outcome: PullOutcome } | { ok: false; error: string }
);

/**
 * Polls the enabled pull connections that are due: their interval since the last poll, doubled
 * after each failed poll in a row up to an hour, so a server that is down is not hammered. A
 * connection is claimed with `FOR UPDATE SKIP LOCKED`, so several LabRelay instances never poll the
 * same one at once. A failure is logged every time but audited once, when it begins
 * (`connection.pull_failed`); the first poll that works again is audited too
 * (`connection.pull_recovered`).
 */
export async function pollDueConnections(
  services: Services,
  tokens: TokenProvider,
  stopped: () => boolean = () => false,
): Promise<PollResult[]> {
  const due = await services.db.transaction().execute(async (trx) => {
    const interval = sql<number>`coalesce((settings->>'pollIntervalSeconds')::int, ${DEFAULT_POLL_SECONDS})`;
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
            sql<Date>`now() - make_interval(secs => greatest(${interval}, least(${interval} * power(2, least(pull_failures, 20)), ${MAX_BACKOFF_SECONDS})))`,
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
  const results: PollResult[] = [];
  for (const connection of due) {
    if (stopped()) break;
    const subject = `connection/${connection.id}`;
    const log = { tenantId: connection.tenant_id, connectionId: connection.id };
    try {
      const outcome = await pullServiceRequests(services, connection, tokens);
      if (outcome.orders > 0) services.logger.info({ ...log, ...outcome }, 'pulled orders');
      if (connection.pull_failures > 0)
        await services.db.transaction().execute(async (trx) => {
          await tenantScope(trx, connection.tenant_id)
            .updateTable('connections')
            .set({ pull_failures: 0 })
            .where('id', '=', connection.id)
            .execute();
          await appendAudit(trx, {
            tenantId: connection.tenant_id,
            actor: 'puller',
            action: 'connection.pull_recovered',
            subject,
            details: { failedPolls: connection.pull_failures },
          });
        });
      results.push({ connectionId: connection.id, ok: true, outcome });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      services.logger.warn(
        { ...log, error: message, failedPolls: connection.pull_failures + 1 },
        'pull failed',
      );
      await services.db.transaction().execute(async (trx) => {
        await tenantScope(trx, connection.tenant_id)
          .updateTable('connections')
          .set((eb) => ({ pull_failures: eb('pull_failures', '+', 1) }))
          .where('id', '=', connection.id)
          .execute();
        if (connection.pull_failures === 0)
          await appendAudit(trx, {
            tenantId: connection.tenant_id,
            actor: 'puller',
            action: 'connection.pull_failed',
            subject,
            details: { error: message.slice(0, 1000) },
          });
      });
      results.push({ connectionId: connection.id, ok: false, error: message });
    }
  }
  return results;
}

/** Runs pollDueConnections every `tickMs` until stopped. */
export function runPullers(services: Services, tickMs = 5_000): { stop(): Promise<void> } {
  const tokens = new TokenProvider();
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = running
      .then(() => pollDueConnections(services, tokens, () => stopped))
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
