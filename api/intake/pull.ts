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
import { openConnectionAuth } from '../../adapters/crypto/secret-box.ts';
import { AppError } from '../errors.ts';
import { isDataException, storeInbound } from './store.ts';

/** Pages with something new that one poll takes at most; the rest waits for the next poll. */
const MAX_PAGES = 20;
/**
 * Pages one poll reads at most in all: a server that ignores `_sort` moves its cursor only after a
 * whole read, and pages of ServiceRequests already taken do not count toward MAX_PAGES.
 */
const MAX_READ_PAGES = 500;
const PAGE_SIZE = 50;
const DEFAULT_POLL_SECONDS = 60;
const HTTP_TIMEOUT_MS = 30_000;
/**
 * Each poll reads again from this long before the cursor: a ServiceRequest committed late with an
 * earlier `lastUpdated` (a long transaction on the EHR's side) is still found. What was taken in
 * that window is remembered, so nothing is taken twice.
 */
const LOOKBACK_MS = 60_000;
/** How long a claimed connection is its poller's; a poller that dies frees it when this ends. */
const LEASE_MINUTES = 15;

export interface PullOutcome {
  orders: number;
  pages: number;
  cursor: string | null;
  /** ServiceRequests that could not be taken: audited (`connection.pull_skipped`) and passed over. */
  skipped: number;
  /** Whether the server says it sorted by `_lastUpdated` (its self link) and answered in that order. */
  sorted: boolean;
  /** Whether the whole result was read (no page left, no link refused). */
  complete: boolean;
}

type Entry = { fullUrl?: string; resource?: Record<string, unknown> };

const lastUpdatedOf = (e: Entry): string | null => {
  const updated = (e.resource?.meta as { lastUpdated?: unknown } | undefined)?.lastUpdated;
  return typeof updated === 'string' && !Number.isNaN(Date.parse(updated)) ? updated : null;
};
const idOf = (e: Entry): string => `ServiceRequest/${String(e.resource?.id ?? e.fullUrl ?? '')}`;
/**
 * One version of one ServiceRequest as read: an update (new version or new `lastUpdated`) is a new
 * key and taken again. `{lastUpdated} {Type/id} {versionId}`; none of the three holds a space.
 */
const takenKeyOf = (e: Entry): string =>
  `${lastUpdatedOf(e) ?? ''} ${idOf(e)} ${String((e.resource?.meta as { versionId?: unknown } | undefined)?.versionId ?? '')}`;
const takenAt = (key: string): number => Date.parse(key.slice(0, key.indexOf(' ')));

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

/** Whether the server says, in its self link, that it sorted by `_lastUpdated` as asked. */
function sortedBySelfLink(page: Record<string, unknown>, base: URL): boolean {
  const link = Array.isArray(page.link) ? (page.link as { relation?: string; url?: string }[]) : [];
  const self = link.find((l) => l.relation === 'self')?.url;
  if (!self) return false;
  try {
    return new URL(self, base).searchParams.get('_sort') === '_lastUpdated';
  } catch {
    return false;
  }
}

/** A refusal of one order by the store (an ambiguous patient, a value the database cannot hold). */
function isOrderRefusal(error: unknown): error is Error {
  return error instanceof AppError || isDataException(error);
}

/**
 * The pull direction (seed 002 "Lab Ops uses those credentials to read approved resources"): reads
 * a hospital FHIR server's new ServiceRequests, with the connection's credentials and only GET
 * requests, and takes each page in as an inbound message (the orders stored and their workflows
 * started, exactly as if the hospital had sent them).
 *
 * The cursor is the newest `meta.lastUpdated` read. Each poll asks for `_lastUpdated=ge` a minute
 * before it (LOOKBACK_MS) and passes over the versions already taken in that minute, which are kept
 * beside the cursor: a ServiceRequest stamped in the same instant as the last one taken, or
 * committed late, is not missed, and none is taken twice. The cursor moves after each page only
 * while the server says it sorted by `_lastUpdated` (self link) and answers in that order;
 * otherwise only after a whole read, since an older ServiceRequest may still be on a later page.
 * A ServiceRequest that cannot be read, or that the store refuses, is audited and passed over, so
 * one bad order never holds back the others. A page read twice is the same message, stored once.
 */
export async function pullServiceRequests(
  services: Services,
  connection: Connection,
  tokens: TokenProvider,
): Promise<PullOutcome> {
  const tenant = await findTenantById(services.db, connection.tenant_id);
  if (!tenant) throw new Error(`tenant ${connection.tenant_id} does not exist`);
  const base = String((connection.endpoint as { url?: unknown } | null)?.url ?? '').replace(/\/+$/, '');
  const origin = new URL(base).origin;
  const settings = connection.settings as ConnectionSettings;
  const auth: OutboundAuth = openConnectionAuth(services.config.masterKey, connection) ?? { type: 'none' };
  const log = { tenantId: tenant.id, connectionId: connection.id };

  const startCursor = connection.pull_cursor;
  const taken = new Set(connection.pull_cursor_taken);
  const first = new URL(`${base}/ServiceRequest`);
  for (const [k, v] of new URLSearchParams(settings.pullQuery ?? '')) first.searchParams.append(k, v);
  if (startCursor)
    first.searchParams.set(
      '_lastUpdated',
      `ge${new Date(Date.parse(startCursor) - LOOKBACK_MS).toISOString()}`,
    );
  first.searchParams.set('_sort', '_lastUpdated');
  first.searchParams.set('_count', String(PAGE_SIZE));
  first.searchParams.set('_include', 'ServiceRequest:subject');

  let newest = startCursor;
  let previous: number | null = null;
  let sorted = true;
  let saved = startCursor;
  const outcome = { orders: 0, pages: 0, skipped: 0 };
  let pagesWithNew = 0;
  let truncated = false;

  /**
   * Writes the cursor (`to`: the newest read, or where it was) with the versions taken since a
   * look-back before it: the next poll reads from there and passes over those.
   */
  async function saveCursor(to: string | null) {
    const since = to === null ? -Infinity : Date.parse(to) - LOOKBACK_MS;
    const keep = [...taken].filter((k) => !(takenAt(k) < since));
    // Only over the cursor this poll started from or last wrote: never backwards over another poller.
    const moved = await tenantScope(services.db, tenant!.id)
      .updateTable('connections')
      .set({ pull_cursor: to, pull_cursor_taken: JSON.stringify(keep) })
      .where('id', '=', connection.id)
      .where(sql<boolean>`pull_cursor is not distinct from ${saved}`)
      .executeTakeFirst();
    if (moved.numUpdatedRows === 0n)
      throw new Error('another poller moved this connection’s cursor meanwhile; this poll stops');
    saved = to;
  }

  /** Stores ServiceRequests as one inbound message; the number of orders. */
  async function store(requests: Entry[], others: Entry[]): Promise<number> {
    const bundle = collection(requests, others);
    const intake = parseFhirIntake(bundle);
    const raw = JSON.stringify(bundle);
    const contentHash = createHash('sha256').update(raw).digest('hex');
    await storeInbound(
      services,
      {
        tenant: tenant!,
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
        orderNamespace: tenant!.slug,
      },
      { results: intake.results, orders: intake.orders, patients: intake.patients },
      () => ({ response: '', status: 200 }),
    );
    return intake.orders.reduce((n, o) => n + o.orders.length, 0);
  }

  let next: string | null = first.toString();
  while (next) {
    if (pagesWithNew >= MAX_PAGES || outcome.pages >= MAX_READ_PAGES) {
      truncated = true;
      break;
    }
    const page = await getJson(next, connection.id, auth, tokens);
    outcome.pages += 1;
    if (outcome.pages === 1 && !sortedBySelfLink(page, first)) sorted = false;
    const entries = (Array.isArray(page.entry) ? (page.entry as Entry[]) : []).filter((e) => e.resource);
    const requests = entries.filter((e) => e.resource!.resourceType === 'ServiceRequest');
    const others = entries.filter((e) => e.resource!.resourceType !== 'ServiceRequest');

    const fresh: Entry[] = [];
    for (const e of requests) {
      const updated = lastUpdatedOf(e);
      if (updated !== null) {
        const at = Date.parse(updated);
        if (previous !== null && at < previous) sorted = false;
        previous = at;
        if (newest === null || at > Date.parse(newest)) newest = updated;
      }
      const key = takenKeyOf(e);
      if (!taken.has(key)) fresh.push(e);
    }
    if (fresh.length > 0) pagesWithNew += 1;

    // Each ServiceRequest is read alone first, so one that cannot be taken is passed over by itself.
    const readable: Entry[] = [];
    const skipped: { resource: string; lastUpdated: string | null; reason: string }[] = [];
    const skip = (e: Entry, reason: string) =>
      skipped.push({ resource: idOf(e), lastUpdated: lastUpdatedOf(e), reason: reason.slice(0, 1000) });
    for (const e of fresh) {
      try {
        parseFhirIntake(collection([e], others));
        readable.push(e);
      } catch (error) {
        if (!(error instanceof FhirIntakeError)) throw error;
        skip(e, error.message);
      }
    }
    if (readable.length > 0) {
      try {
        outcome.orders += await store(readable, others);
      } catch (error) {
        if (!isOrderRefusal(error)) throw error;
        // One of them was refused, and nothing of the page was kept: each is stored on its own.
        for (const e of readable) {
          try {
            outcome.orders += await store([e], others);
          } catch (alone) {
            if (!isOrderRefusal(alone)) throw alone;
            skip(e, alone instanceof AppError ? alone.message : `a value cannot be stored: ${alone.message}`);
          }
        }
      }
    }
    outcome.skipped += skipped.length;
    for (const e of requests) taken.add(takenKeyOf(e));

    if (skipped.length > 0)
      await services.db.transaction().execute(async (trx) => {
        for (const s of skipped)
          await appendAudit(trx, {
            tenantId: tenant.id,
            actor: 'puller',
            action: 'connection.pull_skipped',
            subject: `connection/${connection.id}`,
            details: { ...s, server: origin },
          });
      });

    const link = Array.isArray(page.link) ? (page.link as { relation?: string; url?: string }[]) : [];
    const nextLink = link.find((l) => l.relation === 'next')?.url;
    next = null;
    if (nextLink) {
      const url = URL.canParse(nextLink, first.toString()) ? new URL(nextLink, first) : null;
      // Only pages of the same server: a link elsewhere would take our token with it.
      if (url && url.origin === origin) next = url.toString();
      else {
        truncated = true;
        services.logger.warn(log, 'the FHIR server linked its next page to another address; not followed');
      }
    }
    if (sorted) await saveCursor(newest);
  }

  const complete = !truncated;
  if (!sorted) {
    // Unsorted and cut short, the cursor stays; what was taken is kept, so the next poll reads on.
    await saveCursor(complete ? newest : saved);
    if (!complete)
      services.logger.warn(
        { ...log, pages: outcome.pages },
        'the FHIR server does not sort by _lastUpdated and was not read whole: the cursor stays',
      );
  }
  return { ...outcome, cursor: saved, sorted, complete };
}

async function getJson(
  url: string,
  key: string,
  auth: OutboundAuth,
  tokens: TokenProvider,
): Promise<Record<string, unknown>> {
  // Errors name the server by its origin: a search URL's path and query may carry patient data.
  const origin = new URL(url).origin;
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
    if (!response.ok) {
      let codes = '';
      try {
        const outcome = JSON.parse(text) as { resourceType?: string; issue?: { code?: string }[] };
        if (outcome.resourceType === 'OperationOutcome')
          codes = ` (${(outcome.issue ?? []).map((i) => i.code).join(', ')})`;
      } catch {
        // Not JSON: the status says enough.
      }
      throw new Error(`the FHIR server ${origin} answered ${response.status}${codes}`);
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`the FHIR server ${origin} did not answer JSON`);
    }
    if (body.resourceType !== 'Bundle') throw new Error(`the FHIR server ${origin} did not answer a Bundle`);
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
        eb.or([eb('pull_lease_until', 'is', null), eb('pull_lease_until', '<', sql<Date>`now()`)]),
      )
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
      .orderBy(sql`last_polled_at nulls first`)
      .forUpdate()
      .skipLocked()
      .limit(10)
      .execute();
    // A SMART launch client reads only for a person in the EHR; it is never polled.
    const pollable = rows.filter(
      (r) => openConnectionAuth(services.config.masterKey, r)?.type !== 'smart_launch',
    );
    if (pollable.length > 0)
      await trx
        .updateTable('connections')
        .set({
          last_polled_at: sql<Date>`now()`,
          pull_lease_until: sql<Date>`now() + make_interval(mins => ${LEASE_MINUTES})`,
        })
        .where(
          'id',
          'in',
          pollable.map((r) => r.id),
        )
        .execute();
    if (rows.length > pollable.length)
      await trx
        .updateTable('connections')
        .set({ last_polled_at: sql<Date>`now()` })
        .where(
          'id',
          'in',
          rows.filter((r) => !pollable.includes(r)).map((r) => r.id),
        )
        .execute();
    return pollable;
  });
  const results: PollResult[] = [];
  for (const [i, connection] of due.entries()) {
    if (stopped()) {
      // Not polled after all: free the rest at once rather than when their lease ends.
      await services.db
        .updateTable('connections')
        .set({ pull_lease_until: null })
        .where(
          'id',
          'in',
          due.slice(i).map((c) => c.id),
        )
        .execute();
      break;
    }
    results.push(await pollOne(services, connection, tokens));
  }
  return results;
}

/** One poll of one claimed connection: its failures counted and audited, its lease freed. */
async function pollOne(
  services: Services,
  connection: Connection,
  tokens: TokenProvider,
): Promise<PollResult> {
  const subject = `connection/${connection.id}`;
  const log = { tenantId: connection.tenant_id, connectionId: connection.id };
  let result: PollResult;
  let failure: string | null = null;
  try {
    const outcome = await pullServiceRequests(services, connection, tokens);
    if (outcome.orders > 0) services.logger.info({ ...log, ...outcome }, 'pulled orders');
    result = { connectionId: connection.id, ok: true, outcome };
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
    result = { connectionId: connection.id, ok: false, error: failure };
  }
  await services.db.transaction().execute(async (trx) => {
    const scope = tenantScope(trx, connection.tenant_id);
    // Read under a lock: what is audited follows the count as it is now, not as it was claimed.
    const { pull_failures: before } = await scope
      .selectFrom('connections')
      .select('pull_failures')
      .where('id', '=', connection.id)
      .forUpdate()
      .executeTakeFirstOrThrow();
    await scope
      .updateTable('connections')
      .set({ pull_failures: failure === null ? 0 : before + 1, pull_lease_until: null })
      .where('id', '=', connection.id)
      .execute();
    if (failure !== null) {
      services.logger.warn({ ...log, error: failure, failedPolls: before + 1 }, 'pull failed');
      if (before === 0)
        await appendAudit(trx, {
          tenantId: connection.tenant_id,
          actor: 'puller',
          action: 'connection.pull_failed',
          subject,
          details: { error: failure.slice(0, 1000) },
        });
    } else if (before > 0)
      await appendAudit(trx, {
        tenantId: connection.tenant_id,
        actor: 'puller',
        action: 'connection.pull_recovered',
        subject,
        details: { failedPolls: before },
      });
  });
  return result;
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
