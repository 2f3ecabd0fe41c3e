import { sql } from 'kysely';
import { DELIVERY_STATUS } from './deliveries.ts';
import { MESSAGE_STATUS } from './messages.ts';
import { REPORT_STAGE } from './results.ts';
import { tenantScope, type Db } from './tenant-scope.ts';

/** Upper bounds (minutes) of the critical time-to-acknowledge histogram; the last bucket is open. */
export const ACK_BUCKETS_MINUTES = [5, 15, 30, 60] as const;

export interface MonitoringFigures {
  from: Date;
  to: Date;
  messages: {
    /** Accepted plus refused at intake. */
    received: number;
    accepted: number;
    refused: number;
    failed: number;
    /** Share neither failed nor refused; null when nothing arrived. */
    successRate: number | null;
  };
  /** From a message's receipt to its report's release (the report.released audit event). */
  releaseLatency: { released: number; p50Seconds: number | null; p90Seconds: number | null };
  review: {
    reports: number;
    /** Reports a person was asked to review before release. */
    sentToReview: number;
    share: number | null;
  };
  deliveries: {
    total: number;
    delivered: number;
    deadLetters: number;
    underWay: number;
    /** Delivered of those finished (delivered or dead-lettered); null when none finished. */
    successRate: number | null;
  };
  criticalAck: {
    critical: number;
    acknowledged: number;
    unacknowledged: number;
    p50Seconds: number | null;
    p90Seconds: number | null;
    maxSeconds: number | null;
    /** Acknowledged critical results by minutes to acknowledge (`upToMinutes` null: above the last bound). */
    histogram: { upToMinutes: number | null; count: number }[];
  };
}

const rate = (part: number, whole: number) => (whole > 0 ? part / whole : null);
const num = (value: unknown) => (value === null || value === undefined ? null : Number(value));

/**
 * Seed 004's "continuous monitoring" figures of one tenant over [from, to): success rate, processing
 * latency, the share sent to human review, delivery outcomes and critical time-to-acknowledge, all
 * from stored timestamps.
 *
 * @example
 * const figures = await monitoringFigures(db, tenantId, new Date(Date.now() - 86_400_000), new Date());
 */
export async function monitoringFigures(
  db: Db,
  tenantId: string,
  from: Date,
  to: Date,
): Promise<MonitoringFigures> {
  const scope = tenantScope(db, tenantId);
  const messages = scope
    .selectFrom('messages')
    .select([
      sql<string>`count(*)`.as('accepted'),
      sql<string>`count(*) filter (where status = ${MESSAGE_STATUS.failed})`.as('failed'),
    ])
    .where('received_at', '>=', from)
    .where('received_at', '<', to)
    .executeTakeFirstOrThrow();
  // rejected_messages allows a null tenant (refused before its tenant was known), so it is outside
  // tenantScope's typed tables: the tenant condition is written here.
  const refused = db
    .selectFrom('rejected_messages')
    .select(sql<string>`count(*)`.as('n'))
    .where('tenant_id', '=', tenantId)
    .where('received_at', '>=', from)
    .where('received_at', '<', to)
    .executeTakeFirstOrThrow();
  const releases = scope
    .selectFrom('reports')
    .innerJoin('messages', 'messages.id', 'reports.message_id')
    .innerJoin('audit_events', (join) =>
      join
        .onRef('audit_events.tenant_id', '=', 'reports.tenant_id')
        .on('audit_events.action', '=', 'report.released')
        .on(sql<boolean>`audit_events.subject = 'report/' || reports.id::text`),
    )
    .select(sql<number>`extract(epoch from (min(audit_events.at) - messages.received_at))`.as('seconds'))
    .where('messages.received_at', '>=', from)
    .where('messages.received_at', '<', to)
    .groupBy(['reports.id', 'messages.received_at']);
  const latency = db
    .selectFrom(releases.as('r'))
    .select([
      sql<string>`count(*)`.as('released'),
      sql<number | null>`percentile_cont(0.5) within group (order by seconds)`.as('p50'),
      sql<number | null>`percentile_cont(0.9) within group (order by seconds)`.as('p90'),
    ])
    .executeTakeFirstOrThrow();
  const review = scope
    .selectFrom('reports')
    .select([
      sql<string>`count(*)`.as('reports'),
      sql<string>`count(*) filter (where exists (
        select 1 from tasks where tasks.tenant_id = reports.tenant_id and tasks.report_id = reports.id
          and tasks.kind = 'review_result'))`.as('reviewed'),
    ])
    .where('stage', '!=', REPORT_STAGE.duplicate)
    .where('created_at', '>=', from)
    .where('created_at', '<', to)
    .executeTakeFirstOrThrow();
  const deliveries = scope
    .selectFrom('deliveries')
    .select([
      sql<string>`count(*)`.as('total'),
      sql<string>`count(*) filter (where status = ${DELIVERY_STATUS.delivered})`.as('delivered'),
      sql<string>`count(*) filter (where status = ${DELIVERY_STATUS.deadLetter})`.as('dead'),
    ])
    .where('created_at', '>=', from)
    .where('created_at', '<', to)
    .executeTakeFirstOrThrow();
  const minutes = sql<number>`extract(epoch from (received_at - identified_at)) / 60`;
  const critical = scope
    .selectFrom('critical_results')
    .select([
      sql<string>`count(*)`.as('critical'),
      sql<string>`count(received_at)`.as('acknowledged'),
      sql<
        number | null
      >`percentile_cont(0.5) within group (order by extract(epoch from (received_at - identified_at)))`.as(
        'p50',
      ),
      sql<
        number | null
      >`percentile_cont(0.9) within group (order by extract(epoch from (received_at - identified_at)))`.as(
        'p90',
      ),
      sql<number | null>`max(extract(epoch from (received_at - identified_at)))`.as('max'),
      ...ACK_BUCKETS_MINUTES.map((upTo, i) =>
        sql<string>`count(*) filter (where received_at is not null and ${minutes} <= ${upTo} and ${minutes} > ${
          i === 0 ? -1 : ACK_BUCKETS_MINUTES[i - 1]!
        })`.as(`b${i}`),
      ),
      sql<string>`count(*) filter (where received_at is not null and ${minutes} > ${ACK_BUCKETS_MINUTES.at(-1)!})`.as(
        'above',
      ),
    ])
    .where('identified_at', '>=', from)
    .where('identified_at', '<', to)
    .executeTakeFirstOrThrow();

  const [m, r, l, v, d, c] = await Promise.all([messages, refused, latency, review, deliveries, critical]);
  const accepted = Number(m.accepted);
  const failed = Number(m.failed);
  const refusedCount = Number(r.n);
  const delivered = Number(d.delivered);
  const dead = Number(d.dead);
  const acknowledged = Number(c.acknowledged);
  const buckets = c as unknown as Record<string, string>;
  return {
    from,
    to,
    messages: {
      received: accepted + refusedCount,
      accepted,
      refused: refusedCount,
      failed,
      successRate: rate(accepted - failed, accepted + refusedCount),
    },
    releaseLatency: { released: Number(l.released), p50Seconds: num(l.p50), p90Seconds: num(l.p90) },
    review: {
      reports: Number(v.reports),
      sentToReview: Number(v.reviewed),
      share: rate(Number(v.reviewed), Number(v.reports)),
    },
    deliveries: {
      total: Number(d.total),
      delivered,
      deadLetters: dead,
      underWay: Number(d.total) - delivered - dead,
      successRate: rate(delivered, delivered + dead),
    },
    criticalAck: {
      critical: Number(c.critical),
      acknowledged,
      unacknowledged: Number(c.critical) - acknowledged,
      p50Seconds: num(c.p50),
      p90Seconds: num(c.p90),
      maxSeconds: num(c.max),
      histogram: [
        ...ACK_BUCKETS_MINUTES.map((upTo, i) => ({ upToMinutes: upTo, count: Number(buckets[`b${i}`]) })),
        { upToMinutes: null, count: Number(buckets.above) },
      ],
    },
  };
}
