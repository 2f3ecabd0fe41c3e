import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import {
  claimDueInboxRows,
  claimDueOrderInboxRows,
  markInboxFailed,
  markInboxStarted,
  markOrderInboxFailed,
  markOrderInboxStarted,
  type InboxRow,
  type OrderInboxRow,
} from '../db/inbox.ts';
import { MESSAGE_STATUS } from '../db/messages.ts';
import type { Database } from '../db/schema.ts';
import type { orderWorkflow } from '../workflows/order-workflow.ts';
import type { Metrics } from './metrics.ts';

export const TENANT_SEARCH_ATTRIBUTE = defineSearchAttributeKey(
  'LabRelayTenant',
  SearchAttributeType.KEYWORD,
);
export const ORDER_KEY_SEARCH_ATTRIBUTE = defineSearchAttributeKey(
  'LabRelayOrderKey',
  SearchAttributeType.KEYWORD,
);

/** Who asked for a start: intake after its commit, the relay, or a person re-processing a message. */
export type StartSource = 'intake' | 'relay' | 'reprocess';

export interface WorkflowStarter {
  /** Starts (or signals) the order workflow of each inbox row; a failure is left for the relay. */
  start(rows: InboxRow[], source: StartSource): Promise<void>;
  /** Starts (or tells) the order workflow of each placed order; a failure is left for the relay. */
  startOrders(rows: OrderInboxRow[], source: StartSource): Promise<void>;
  /** One relay pass: retries every inbox row whose start has not succeeded. Returns rows started. */
  relayOnce(): Promise<number>;
  /** Waits for the starts intake has in flight (at shutdown, before the database closes). */
  drain(): Promise<void>;
  /** Runs the relay every `intervalMs` until stopped. */
  runRelay(intervalMs: number): { stop(): Promise<void> };
  /**
   * Wakes a workflow after a person's action was committed (a task completed, a critical result
   * acknowledged). Best effort: the database holds the action and the workflow re-reads it on its
   * own timer, so a failed signal delays, never loses. With `orderStart`, an order workflow that has
   * closed is started again to take the signal. Returns whether Temporal took the signal.
   */
  wake(
    workflowId: string,
    signal: string,
    args: unknown[],
    orderStart?: { tenantId: string; orderKey: string },
  ): Promise<boolean>;
  /** Starts a delivery workflow (a re-send); throws when Temporal does not take it. */
  startDelivery(tenantId: string, deliveryId: string, workflowId: string): Promise<void>;
}

export interface WorkflowStarterDeps {
  db: Kysely<Database>;
  client: () => Client | null;
  taskQueue: string;
  logger: Logger;
  metrics: Metrics;
  /** False when the cluster lacks our search attributes (they could not be registered): start without them. */
  searchAttributes?: boolean;
  /** How long one start may take before it is left to the relay. */
  startTimeoutMs?: number;
  /** Starts intake may have in flight before it leaves further ones to the relay (default 32). */
  maxIntakeStartsInFlight?: number;
}

/**
 * The bridge between a committed intake transaction and Temporal: `signalWithStart` on a workflow id
 * derived from tenant + order, so starting twice is harmless. The inbox row is marked started only
 * after Temporal accepted the signal, so nothing committed is ever lost.
 */
export function createWorkflowStarter(deps: WorkflowStarterDeps): WorkflowStarter {
  const { db, logger, metrics } = deps;
  const timeout = deps.startTimeoutMs ?? 10_000;
  const searchAttributes = (tenantId: string, orderKey: string) =>
    deps.searchAttributes === false
      ? {}
      : {
          typedSearchAttributes: [
            { key: TENANT_SEARCH_ATTRIBUTE, value: tenantId },
            { key: ORDER_KEY_SEARCH_ATTRIBUTE, value: orderKey },
          ],
        };

  async function startOne(row: InboxRow, source: StartSource): Promise<boolean> {
    const client = deps.client();
    try {
      if (!client) throw new Error('Temporal is not connected');
      await client.connection.withDeadline(Date.now() + timeout, () =>
        client.workflow.signalWithStart<typeof orderWorkflow, [{ reportId: string }]>('orderWorkflow', {
          workflowId: row.workflow_id,
          taskQueue: deps.taskQueue,
          args: [{ tenantId: row.tenant_id, orderKey: row.order_key }],
          signal: 'resultReceived',
          signalArgs: [{ reportId: row.report_id }],
          ...searchAttributes(row.tenant_id, row.order_key),
        }),
      );
      await db.transaction().execute(async (trx) => {
        await markInboxStarted(trx, row.report_id);
        await trx
          .updateTable('messages')
          .set({ status: MESSAGE_STATUS.processing, updated_at: new Date() })
          .where('id', '=', row.message_id)
          .where('tenant_id', '=', row.tenant_id)
          .where('status', '=', MESSAGE_STATUS.received)
          .execute();
      });
      metrics.workflowStarts.inc({ outcome: 'ok', source });
      return true;
    } catch (error) {
      metrics.workflowStarts.inc({ outcome: 'failed', source });
      logger.warn(
        { err: error, workflowId: row.workflow_id, reportId: row.report_id, source },
        'workflow start failed; the relay will retry',
      );
      await markInboxFailed(db, row.report_id, (error as Error).message).catch((e: unknown) =>
        logger.error({ err: e }, 'could not record the failed start'),
      );
      return false;
    }
  }

  async function startOrder(row: OrderInboxRow, source: StartSource): Promise<boolean> {
    const client = deps.client();
    try {
      if (!client) throw new Error('Temporal is not connected');
      await client.connection.withDeadline(Date.now() + timeout, () =>
        client.workflow.signalWithStart<typeof orderWorkflow, [{ orderId: string; cancelled: boolean }]>(
          'orderWorkflow',
          {
            workflowId: row.workflow_id,
            taskQueue: deps.taskQueue,
            args: [{ tenantId: row.tenant_id, orderKey: row.order_key }],
            signal: 'orderPlaced',
            signalArgs: [{ orderId: row.order_id, cancelled: row.cancelled }],
            ...searchAttributes(row.tenant_id, row.order_key),
          },
        ),
      );
      await db.transaction().execute(async (trx) => {
        await markOrderInboxStarted(trx, row.order_id);
        // A message of orders only is done once its orders' workflows have them.
        await trx
          .updateTable('messages')
          .set({ status: MESSAGE_STATUS.delivered, updated_at: new Date() })
          .where('id', '=', row.message_id)
          .where('tenant_id', '=', row.tenant_id)
          .where('status', '=', MESSAGE_STATUS.received)
          .where(({ not, exists, selectFrom }) =>
            not(exists(selectFrom('reports').select('id').where('reports.message_id', '=', row.message_id))),
          )
          .execute();
      });
      metrics.workflowStarts.inc({ outcome: 'ok', source });
      return true;
    } catch (error) {
      metrics.workflowStarts.inc({ outcome: 'failed', source });
      logger.warn(
        { err: error, workflowId: row.workflow_id, orderId: row.order_id, source },
        'order workflow start failed; the relay will retry',
      );
      await markOrderInboxFailed(db, row.order_id, (error as Error).message).catch((e: unknown) =>
        logger.error({ err: e }, 'could not record the failed start'),
      );
      return false;
    }
  }

  const inFlight = new Set<Promise<void>>();
  const maxInFlight = deps.maxIntakeStartsInFlight ?? 32;
  /**
   * Intake never queues behind Temporal: when Temporal is away or already has this many starts in
   * hand, the start is left to the relay (the committed inbox row is due in 30 s), so a burst or a
   * slow cluster never holds up ACKs or grows memory, and the backlog drains at Temporal's pace.
   */
  const shed = (source: StartSource) =>
    source === 'intake' && (inFlight.size >= maxInFlight || deps.client() === null);
  async function start(rows: InboxRow[], source: StartSource): Promise<void> {
    if (shed(source)) return;
    await track(async () => {
      for (const row of rows) await startOne(row, source);
    });
  }
  async function startOrders(rows: OrderInboxRow[], source: StartSource): Promise<void> {
    if (shed(source)) return;
    await track(async () => {
      for (const row of rows) await startOrder(row, source);
    });
  }
  async function track(work: () => Promise<void>): Promise<void> {
    const run = work();
    inFlight.add(run);
    try {
      await run;
    } finally {
      inFlight.delete(run);
    }
  }

  async function drain(): Promise<void> {
    await Promise.all([...inFlight]);
  }

  async function relayOnce(): Promise<number> {
    // Intake gives itself 30 s before a row is due here, so the relay does not race its start.
    const claimSeconds = Math.ceil(timeout / 1000) + 20;
    // Orders first: a placed order's workflow should exist before its results signal it.
    const orders = await claimDueOrderInboxRows(db, { limit: 100, claimSeconds });
    const rows = await claimDueInboxRows(db, { limit: 100, claimSeconds });
    const work: Array<() => Promise<boolean>> = [
      ...orders.map((row) => () => startOrder(row, 'relay')),
      ...rows.map((row) => () => startOne(row, 'relay')),
    ];
    let started = 0;
    let failedInARow = 0;
    for (const attempt of work) {
      if (await attempt()) {
        started++;
        failedInARow = 0;
      } else if (++failedInARow >= 3) {
        // Probably Temporal is down: leave the rest claimed for a later pass rather than time out on each.
        break;
      }
    }
    return started;
  }

  function runRelay(intervalMs: number) {
    let stopped = false;
    let running: Promise<unknown> | null = null;
    const timer = setInterval(() => {
      if (stopped || running) return;
      running = relayOnce()
        .catch((error: unknown) => logger.error({ err: error }, 'relay pass failed'))
        .finally(() => {
          running = null;
        });
    }, intervalMs);
    return {
      async stop() {
        stopped = true;
        clearInterval(timer);
        await running;
      },
    };
  }

  async function wake(
    workflowId: string,
    signal: string,
    args: unknown[],
    orderStart?: { tenantId: string; orderKey: string },
  ): Promise<boolean> {
    const client = deps.client();
    try {
      if (!client) throw new Error('Temporal is not connected');
      await client.connection.withDeadline(Date.now() + timeout, async () => {
        if (orderStart) {
          await client.workflow.signalWithStart('orderWorkflow', {
            workflowId,
            taskQueue: deps.taskQueue,
            args: [orderStart],
            signal,
            signalArgs: args,
            ...searchAttributes(orderStart.tenantId, orderStart.orderKey),
          });
        } else {
          await client.workflow.getHandle(workflowId).signal(signal, ...args);
        }
      });
      return true;
    } catch (error) {
      logger.warn(
        { err: error, workflowId, signal },
        'could not signal the workflow; it will re-check on its own timer',
      );
      return false;
    }
  }

  async function startWorkflow(type: string, workflowId: string, args: unknown[]): Promise<void> {
    const client = deps.client();
    if (!client) throw new Error('Temporal is not connected');
    await client.connection.withDeadline(Date.now() + timeout, async () => {
      await client.workflow.start(type, {
        workflowId,
        taskQueue: deps.taskQueue,
        args,
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
    });
  }

  async function startDelivery(tenantId: string, deliveryId: string, workflowId: string): Promise<void> {
    await startWorkflow('deliveryWorkflow', workflowId, [{ tenantId, deliveryId }]);
  }

  return { start, startOrders, relayOnce, runRelay, drain, wake, startDelivery };
}
