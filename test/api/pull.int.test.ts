import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TokenProvider } from '../../adapters/oauth/token-client.ts';
import { pollDueConnections, pullServiceRequests } from '../../api/intake/pull.ts';
import {
  admin,
  createTenantWithCredential,
  getJson,
  startTestLabRelay,
  type TenantCredential,
  type TestLabRelay,
} from '../support/labrelay.ts';

type Resource = Record<string, any>;

/**
 * A hospital FHIR server's ServiceRequest search as the pull direction reads it: `_lastUpdated`
 * with `ge`/`gt`, `_include=ServiceRequest:subject`, pages of at most `pageSize` linked by `next`.
 * Its resources carry the `meta.lastUpdated` the test gives them, so several can share an instant.
 * With `honoursSort` false it answers in the order the resources were written, whatever `_sort`
 * asks (servers that do not support `_sort` ignore it); `failPage` answers that page (1-based) 500;
 * `down` answers everything 503; `nextOrigin` puts its next links on another address.
 */
async function startHospital() {
  const written: Resource[] = [];
  const patients = new Map<string, Resource>();
  const requests: string[] = [];
  const state = {
    pageSize: 2,
    honoursSort: true,
    failPage: null as number | null,
    down: false,
    /** Where its next links point, as a server behind a proxy may give them (null: itself). */
    nextOrigin: null as string | null,
  };

  function search(url: URL): Resource {
    let found = [...written];
    for (const filter of url.searchParams.getAll('_lastUpdated')) {
      const [, prefix, instant] = /^(ge|gt)(.+)$/.exec(filter)!;
      const at = Date.parse(instant!);
      found = found.filter((r) => {
        const t = Date.parse(r.meta.lastUpdated);
        return prefix === 'ge' ? t >= at : t > at;
      });
    }
    if (state.honoursSort && url.searchParams.get('_sort') === '_lastUpdated')
      found.sort((a, b) => Date.parse(a.meta.lastUpdated) - Date.parse(b.meta.lastUpdated));
    const offset = Number(url.searchParams.get('_offset') ?? 0);
    const size = Math.min(Number(url.searchParams.get('_count') ?? 100), state.pageSize);
    const page = found.slice(offset, offset + size);
    const subjects =
      url.searchParams.get('_include') === 'ServiceRequest:subject'
        ? [...new Set(page.map((r) => String(r.subject.reference)))].flatMap((ref) => patients.get(ref) ?? [])
        : [];
    const base = `http://${url.host}/fhir`;
    // The self link says what the search did: a server that ignores _sort leaves it out.
    const self = new URL(url);
    if (!state.honoursSort) self.searchParams.delete('_sort');
    const link = [{ relation: 'self', url: self.toString() }];
    if (offset + size < found.length) {
      const next = new URL(url.pathname + url.search, state.nextOrigin ?? url.origin);
      next.searchParams.set('_offset', String(offset + size));
      link.push({ relation: 'next', url: next.toString() });
    }
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: found.length,
      link,
      entry: [
        ...page.map((r) => ({
          fullUrl: `${base}/ServiceRequest/${r.id}`,
          resource: r,
          search: { mode: 'match' },
        })),
        ...subjects.map((r) => ({
          fullUrl: `${base}/Patient/${r.id}`,
          resource: r,
          search: { mode: 'include' },
        })),
      ],
    };
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    requests.push(url.pathname + url.search);
    const pageNumber = Math.floor(Number(url.searchParams.get('_offset') ?? 0) / state.pageSize) + 1;
    if (req.method !== 'GET' || url.pathname !== '/fhir/ServiceRequest') return void res.writeHead(404).end();
    if (state.down) return void res.writeHead(503).end('down for maintenance');
    if (state.failPage === pageNumber) {
      state.failPage = null;
      return void res.writeHead(500, { 'content-type': 'application/fhir+json' }).end(
        JSON.stringify({
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'exception' }],
        }),
      );
    }
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(search(url)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/fhir`,
    state,
    requests,
    patient(id: string, mrn: string, family: string) {
      patients.set(`Patient/${id}`, {
        resourceType: 'Patient',
        id,
        identifier: [{ system: 'urn:oid:1.2.3.4', value: mrn }],
        name: [{ family, given: ['Pat'] }],
        birthDate: '1970-02-03',
      });
    },
    /** A ServiceRequest written by the hospital's EHR at `lastUpdated`; `change` spoils it. */
    order(orderNumber: string, patientId: string, lastUpdated: string, change: Resource = {}) {
      written.push({
        resourceType: 'ServiceRequest',
        id: orderNumber.toLowerCase(),
        meta: { versionId: '1', lastUpdated },
        status: 'active',
        intent: 'order',
        identifier: [{ system: 'urn:oid:1.2.3.4.5', value: orderNumber }],
        code: { coding: [{ system: 'http://loinc.org', code: '24321-2', display: 'Basic metabolic panel' }] },
        subject: { reference: `Patient/${patientId}` },
        ...change,
      });
    },
    /** The EHR updates a ServiceRequest: a new version stamped `lastUpdated`, where it was in the list. */
    update(orderNumber: string, lastUpdated: string, change: Resource = {}) {
      const i = written.findIndex((r) => r.id === orderNumber.toLowerCase());
      const old = written[i]!;
      written[i] = {
        ...old,
        ...change,
        meta: { versionId: String(Number(old.meta.versionId) + 1), lastUpdated },
      };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const at = (second: number) => `2026-12-04T08:00:${String(second).padStart(2, '0')}.000Z`;

/**
 * The pull direction against a hospital FHIR server, one poll at a time (the background poller is
 * held back, so each poll is the test's): each ServiceRequest becomes an order exactly once, none
 * is lost to a shared instant, a server that ignores `_sort` or fails half way through, and one
 * that cannot be read is audited and passed over.
 */
describe('pulling ServiceRequests from a hospital FHIR server', () => {
  let lr: TestLabRelay;
  const tokens = new TokenProvider();

  beforeAll(async () => {
    // One tick an hour: no background poll races the test's own.
    lr = await startTestLabRelay('pglite', { pullTickMs: 3_600_000 });
  }, 120_000);
  afterAll(async () => {
    await lr?.stop();
  });

  /** A tenant with a pull connection to `hospital`, and a poll that reads the connection as stored. */
  async function connect(slug: string, hospital: { baseUrl: string }, settings?: Record<string, unknown>) {
    const cred = await createTenantWithCredential(lr.baseUrl, slug, ['orders:write', 'results:read']);
    const { id } = await admin<{ id: string }>(lr.baseUrl, 'POST', `/v1/admin/tenants/${slug}/connections`, {
      name: 'GenHosp orders',
      direction: 'pull',
      format: 'fhir',
      environment: 'production',
      endpoint: { url: hospital.baseUrl },
      ...(settings ? { settings } : {}),
    });
    const services = lr.labrelay.services!;
    const poll = async () =>
      pullServiceRequests(
        services,
        await services.db
          .selectFrom('connections')
          .selectAll()
          .where('id', '=', id)
          .executeTakeFirstOrThrow(),
        tokens,
      );
    return { cred, connectionId: id, poll };
  }

  /** How many times each order number is held by the tenant. */
  async function ordersOf(cred: TenantCredential): Promise<Record<string, number>> {
    const { body } = await getJson(lr.baseUrl, cred, `/v1/t/${cred.slug}/orders?limit=500`);
    const counts: Record<string, number> = {};
    for (const o of body.orders as { placerOrderNumber: string }[])
      counts[o.placerOrderNumber] = (counts[o.placerOrderNumber] ?? 0) + 1;
    return counts;
  }

  test('a ServiceRequest stamped in the instant of the last one taken, a new version in that instant, one committed late: each read on the next poll, none taken twice', async () => {
    const hospital = await startHospital();
    try {
      hospital.patient('p1', 'MRN-SAME-1', 'Same');
      hospital.order('SAME-A', 'p1', at(1));
      hospital.order('SAME-B', 'p1', at(2));
      hospital.order('SAME-C', 'p1', at(2));
      const { cred, poll } = await connect('pull-same', hospital);

      const first = await poll();
      expect(first).toMatchObject({ orders: 3, pages: 2, cursor: at(2), skipped: 0, sorted: true });
      // Written after that poll, but stamped with the same instant as B and C.
      hospital.order('SAME-D', 'p1', at(2));
      hospital.order('SAME-E', 'p1', at(3));
      const asked = hospital.requests.length;
      const second = await poll();
      // From a minute before the cursor, so a late commit is found too.
      expect(hospital.requests[asked]).toContain(
        `_lastUpdated=ge${encodeURIComponent('2026-12-04T07:59:02.000Z')}`,
      );
      expect(second).toMatchObject({ orders: 2, cursor: at(3) });
      expect(await poll()).toMatchObject({ orders: 0, cursor: at(3) });

      // The EHR changes E in the same instant (a new version), and commits F late, stamped before the cursor.
      hospital.update('SAME-E', at(3), { priority: 'urgent' });
      hospital.order('SAME-F', 'p1', at(1));
      expect(await poll()).toMatchObject({ orders: 2, cursor: at(3) });
      expect(await poll()).toMatchObject({ orders: 0 });

      expect(await ordersOf(cred)).toEqual({
        'SAME-A': 1,
        'SAME-B': 1,
        'SAME-C': 1,
        'SAME-D': 1,
        'SAME-E': 1,
        'SAME-F': 1,
      });
      const { body } = await getJson(lr.baseUrl, cred, `/v1/t/${cred.slug}/orders?placerOrderNumber=SAME-E`);
      expect(body.orders[0].priority).toBe('urgent');
    } finally {
      await hospital.close();
    }
  });

  test('a server that sorts fails half way: the pages read are kept, and the next poll goes on from there', async () => {
    const hospital = await startHospital();
    try {
      hospital.patient('p5', 'MRN-SORTED', 'Sorted');
      for (let n = 1; n <= 6; n++) hospital.order(`SORTED-${n}`, 'p5', at(n));
      const { cred, connectionId, poll } = await connect('pull-sorted', hospital);

      hospital.state.failPage = 3;
      await expect(poll()).rejects.toThrow(/answered 500/);
      const row = await lr.labrelay
        .services!.db.selectFrom('connections')
        .select('pull_cursor')
        .where('id', '=', connectionId)
        .executeTakeFirstOrThrow();
      expect(row.pull_cursor).toBe(at(4));
      expect(await poll()).toMatchObject({ orders: 2, cursor: at(6), sorted: true, complete: true });
      expect(await ordersOf(cred)).toEqual(
        Object.fromEntries([1, 2, 3, 4, 5, 6].map((n) => [`SORTED-${n}`, 1])),
      );
    } finally {
      await hospital.close();
    }
  });

  test('one poll takes at most 20 pages of new orders from a sorted server; the next takes the rest', async () => {
    const hospital = await startHospital();
    try {
      hospital.patient('p6', 'MRN-MANY', 'Many');
      // 42 orders, 2 a page, over 42 seconds: 21 pages.
      for (let n = 1; n <= 42; n++)
        hospital.order(`MANY-${n}`, 'p6', new Date(Date.parse(at(0)) + n * 1000).toISOString());
      const { cred, poll } = await connect('pull-many', hospital);
      expect(await poll()).toMatchObject({ orders: 40, pages: 20, complete: false, sorted: true });
      expect(await poll()).toMatchObject({ orders: 2, complete: true });
      const orders = await ordersOf(cred);
      expect(Object.keys(orders)).toHaveLength(42);
      expect(Object.values(orders).every((n) => n === 1)).toBe(true);
    } finally {
      await hospital.close();
    }
  });

  test('a server that ignores _sort and fails half way: the cursor waits for a whole read, so no order on a later page is lost', async () => {
    const hospital = await startHospital();
    try {
      hospital.state.honoursSort = false;
      hospital.patient('p2', 'MRN-UNSORTED', 'Unsorted');
      // Written in this order, each updated at its own time: the newest comes first.
      for (const [n, second] of [
        [1, 9],
        [2, 1],
        [3, 5],
        [4, 2],
        [5, 7],
      ] as const)
        hospital.order(`UNSORTED-${n}`, 'p2', at(second));
      const { cred, connectionId, poll } = await connect('pull-unsorted', hospital);

      hospital.state.failPage = 3;
      await expect(poll()).rejects.toThrow(/answered 500/);
      const row = await lr.labrelay
        .services!.db.selectFrom('connections')
        .select('pull_cursor')
        .where('id', '=', connectionId)
        .executeTakeFirstOrThrow();
      expect(row.pull_cursor).toBeNull();
      expect(await ordersOf(cred)).toEqual({
        'UNSORTED-1': 1,
        'UNSORTED-2': 1,
        'UNSORTED-3': 1,
        'UNSORTED-4': 1,
      });

      const whole = await poll();
      expect(whole).toMatchObject({ pages: 3, cursor: at(9), sorted: false });
      expect(await ordersOf(cred)).toEqual({
        'UNSORTED-1': 1,
        'UNSORTED-2': 1,
        'UNSORTED-3': 1,
        'UNSORTED-4': 1,
        'UNSORTED-5': 1,
      });
      // The pages read again were the same messages: stored once each.
      const messages = await lr.labrelay
        .services!.db.selectFrom('messages')
        .select('id')
        .where('tenant_id', '=', cred.tenantId)
        .execute();
      expect(messages).toHaveLength(3);
    } finally {
      await hospital.close();
    }
  });

  test('a next link to another address is not followed; from a server that ignores _sort the cursor waits, and the next poll reads on', async () => {
    const hospital = await startHospital();
    try {
      hospital.state.honoursSort = false;
      hospital.state.nextOrigin = 'http://fhir.internal:8080';
      hospital.patient('p7', 'MRN-LINK', 'Link');
      for (const [n, second] of [
        [1, 9],
        [2, 1],
        [3, 5],
        [4, 2],
      ] as const)
        hospital.order(`LINK-${n}`, 'p7', at(second));
      const { cred, poll } = await connect('pull-link', hospital);

      expect(await poll()).toMatchObject({ orders: 2, pages: 1, complete: false, cursor: null });
      expect(hospital.requests.every((r) => !r.includes('fhir.internal'))).toBe(true);
      hospital.state.nextOrigin = null;
      // The first page was taken already: only the second brings new orders.
      expect(await poll()).toMatchObject({ orders: 2, pages: 2, complete: true, cursor: at(9) });
      expect(await ordersOf(cred)).toEqual({ 'LINK-1': 1, 'LINK-2': 1, 'LINK-3': 1, 'LINK-4': 1 });
    } finally {
      await hospital.close();
    }
  });

  test('a ServiceRequest that cannot be read, or that the database refuses, is audited and passed over; the others on its page become orders', async () => {
    const hospital = await startHospital();
    try {
      hospital.patient('p3', 'MRN-SKIP', 'Skip');
      hospital.order('SKIP-GOOD-1', 'p3', at(1));
      hospital.order('SKIP-BAD', 'p3', at(2), { status: 'bogus' });
      hospital.order('SKIP-GOOD-2', 'p3', at(3));
      // Well-formed FHIR, but a NUL character the database cannot hold: refused when stored.
      hospital.order('SKIP-NUL', 'p3', at(4), {
        code: { coding: [{ system: 'http://loinc.org', code: '24321-2', display: 'Basic\u0000panel' }] },
      });
      const { cred, connectionId, poll } = await connect('pull-skip', hospital);

      const first = await poll();
      expect(first).toMatchObject({ orders: 2, skipped: 2, cursor: at(4) });
      expect(await ordersOf(cred)).toEqual({ 'SKIP-GOOD-1': 1, 'SKIP-GOOD-2': 1 });
      const audit = await lr.labrelay
        .services!.db.selectFrom('audit_events')
        .select(['actor', 'subject', 'details'])
        .where('tenant_id', '=', cred.tenantId)
        .where('action', '=', 'connection.pull_skipped')
        .execute();
      expect(audit).toEqual([
        {
          actor: 'puller',
          subject: `connection/${connectionId}`,
          details: {
            resource: 'ServiceRequest/skip-bad',
            lastUpdated: at(2),
            reason: expect.stringContaining('ServiceRequest.status "bogus" is not one of'),
            server: new URL(hospital.baseUrl).origin,
          },
        },
        {
          actor: 'puller',
          subject: `connection/${connectionId}`,
          details: {
            resource: 'ServiceRequest/skip-nul',
            lastUpdated: at(4),
            reason: 'a value cannot be stored: unsupported Unicode escape sequence',
            server: new URL(hospital.baseUrl).origin,
          },
        },
      ]);
      // Passed over for good: the next poll neither takes it nor audits it again.
      expect(await poll()).toMatchObject({ orders: 0, skipped: 0 });
    } finally {
      await hospital.close();
    }
  });

  test('a server that is down is polled less and less often and audited once; the first poll that works again is audited too', async () => {
    const hospital = await startHospital();
    try {
      hospital.patient('p4', 'MRN-DOWN', 'Down');
      hospital.order('DOWN-1', 'p4', at(1));
      hospital.state.down = true;
      const { cred, connectionId } = await connect('pull-down', hospital, { pollIntervalSeconds: 5 });
      const { db } = lr.labrelay.services!;
      // The other tests' hospitals are gone: only this connection is polled here.
      await db
        .updateTable('connections')
        .set({ disabled_at: new Date() })
        .where('direction', '=', 'pull')
        .where('id', '!=', connectionId)
        .execute();
      /** As if the last poll was `seconds` ago; then one tick of the poller, as it runs every few seconds. */
      const tickAfter = async (seconds: number | null) => {
        if (seconds !== null)
          await db
            .updateTable('connections')
            .set({ last_polled_at: new Date(Date.now() - seconds * 1000) })
            .where('id', '=', connectionId)
            .execute();
        const results = await pollDueConnections(lr.labrelay.services!, tokens);
        return results.find((r) => r.connectionId === connectionId) ?? 'not due';
      };
      const audited = () =>
        db
          .selectFrom('audit_events')
          .select(['action', 'details'])
          .where('tenant_id', '=', cred.tenantId)
          .where('action', 'like', 'connection.pull_%')
          .orderBy('sequence')
          .execute();

      expect(await tickAfter(null)).toMatchObject({
        ok: false,
        error: expect.stringContaining('answered 503'),
      });
      // Every 5 s normally; after one failure it waits 10 s, after two 20 s.
      expect(await tickAfter(6)).toBe('not due');
      expect(await tickAfter(11)).toMatchObject({ ok: false });
      expect(await tickAfter(15)).toBe('not due');
      expect(await tickAfter(21)).toMatchObject({ ok: false });
      expect(await audited()).toEqual([
        { action: 'connection.pull_failed', details: { error: expect.stringContaining('answered 503') } },
      ]);

      hospital.state.down = false;
      expect(await tickAfter(41)).toMatchObject({ ok: true, outcome: { orders: 1 } });
      expect(await audited()).toEqual([
        { action: 'connection.pull_failed', details: { error: expect.stringContaining('answered 503') } },
        { action: 'connection.pull_recovered', details: { failedPolls: 3 } },
      ]);
      expect(await ordersOf(cred)).toEqual({ 'DOWN-1': 1 });
      // Back to its own interval.
      expect(await tickAfter(6)).toMatchObject({ ok: true, outcome: { orders: 0 } });
    } finally {
      await hospital.close();
    }
  });
});
