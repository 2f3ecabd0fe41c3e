import { ApplicationFailure, Context } from '@temporalio/activity';
import { toDeliveryBundle, deliveryOutcome } from '../adapters/fhir/outbound.ts';
import {
  toDiagnosticReport,
  toObservation,
  toPatient,
  type ReleasedResult,
} from '../adapters/fhir/resources.ts';
import { MllpClientPool } from '../adapters/hl7v2/mllp-client.ts';
import { toOruR01 } from '../adapters/hl7v2/oru-out.ts';
import { TOKEN_REQUEST_TIMEOUT_MS, TokenError, TokenProvider } from '../adapters/oauth/token-client.ts';
import { openConnectionAuth, openConnectionSecret } from '../adapters/crypto/secret-box.ts';
import { signBody } from '../adapters/crypto/signature.ts';
import {
  DELIVERY_STATUS,
  findDelivery,
  planDeliveries,
  updateDelivery,
  type PlannedDelivery,
} from '../db/deliveries.ts';
import { loadReleasedResult } from '../db/result-views.ts';
import { REPORT_STAGE } from '../db/results.ts';
import type { Connection, Delivery, RecordedRoutingDecision } from '../db/schema.ts';
import { openTask, updateTask } from '../db/tasks.ts';
import { tenantScope, type Db } from '../db/tenant-scope.ts';
import {
  ACK_OUTCOME,
  type AckOutcome,
  type ConnectionSettings,
  type OutboundAuth,
} from '../domain/outbound.ts';
import { TASK_KIND, TASK_PRIORITY, TASK_STATUS } from '../domain/tasks.ts';
import { auditStep, loadTenant, type ActivityDeps, type ReportRef } from './deps.ts';

/** Attempts before a delivery is dead-lettered, unless the connection says otherwise. */
export const DEFAULT_MAX_ATTEMPTS = 8;
/** Minutes a critical result may wait for its delivery before a person is asked to make sure. */
export const CRITICAL_DELIVERY_MINUTES = 15;
/** How long a destination may take to answer one attempt, unless the connection says otherwise. */
const DEFAULT_TIMEOUT_SECONDS = 30;
/** What we keep of a destination's answer (enough to read an OperationOutcome or an ACK). */
const KEEP_RESPONSE_CHARS = 4000;

export interface DeliveryRef {
  tenantId: string;
  deliveryId: string;
}

/** One send of a delivery: a re-send starts a new workflow, and an older one's late answers are ignored. */
export interface DeliverySend extends DeliveryRef {
  /** Absent in histories recorded before sends were told apart. */
  workflowId?: string;
}

export interface DeliveryPlan {
  status: string;
  maxAttempts: number;
  critical: boolean;
  criticalDeliveryMinutes: number;
  /**
   * The longest one attempt can take (token, the answer, a renewed token and a second answer after
   * a 401; or the wait for an MLLP connection, the connect and the ACK): the activity's timeout must
   * exceed it, or a slow attempt would be abandoned while still sending and sent again beside it.
   */
  attemptSeconds?: number;
}

/** What `beginDelivery` says to a send that a re-send has replaced: it stops without a word. */
export const SUPERSEDED = 'superseded';
/** The MLLP client's time to connect (its default). */
const MLLP_CONNECT_SECONDS = 5;
/** Room for everything around the network waits in one attempt (database, building the payload). */
const ATTEMPT_MARGIN_SECONDS = 30;

/** The outcome one attempt reached; anything else is thrown (retryable or not). */
interface Sent {
  payload: string;
  response: string;
  remoteReference: string | null;
}

/** A permanent failure: retrying cannot help (a 4xx other than 408/429, an HL7 AR, a bad setting). */
function permanent(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'DeliveryRefused');
}

/** A delivery and the connection it goes through; a delivery that does not exist fails for good. */
async function loadDelivery(
  db: Db,
  ref: DeliveryRef,
): Promise<{ delivery: Delivery; connection: Connection }> {
  const delivery = await findDelivery(db, ref.tenantId, ref.deliveryId);
  if (!delivery)
    throw ApplicationFailure.nonRetryable(`delivery ${ref.deliveryId} does not exist`, 'DeliveryNotFound');
  const connection = await tenantScope(db, ref.tenantId)
    .selectFrom('connections')
    .selectAll()
    .where('id', '=', delivery.connection_id)
    .executeTakeFirstOrThrow();
  return { delivery, connection };
}

/** The delivery side of the workflows: planning, one attempt, dead letter, a person when it is stuck. */
export function createDeliveryActivities({ db, logger, masterKey }: ActivityDeps) {
  const tokens = new TokenProvider();
  const mllp = new MllpClientPool();

  const audit = auditStep;

  /** Sandbox or production: a key issued for the sandbox, or the connection the message came by. */
  async function environmentOfReport(tenantId: string, messageId: string): Promise<string> {
    const row = await tenantScope(db, tenantId)
      .selectFrom('messages')
      .leftJoin('credentials', 'credentials.id', 'messages.credential_id')
      .leftJoin('connections', 'connections.id', 'messages.connection_id')
      .select(['credentials.key_prefix', 'connections.environment'])
      .where('messages.id', '=', messageId)
      .executeTakeFirst();
    if (row?.key_prefix?.startsWith('lr_test_')) return 'sandbox';
    return row?.environment ?? 'production';
  }

  /**
   * A destination as errors and logs name it: the connection and the server, never the path, query
   * or user info of its URL (a webhook URL may carry its secret there).
   */
  function destination(connection: Connection, url: string): string {
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      origin = 'an unreadable URL';
    }
    return `${connection.name} (${origin})`;
  }

  /** The abort signal of one attempt: its own time limit, or Temporal giving up on the activity. */
  function attemptSignal(ms: number): AbortSignal {
    let cancelled: AbortSignal | null = null;
    try {
      cancelled = Context.current().cancellationSignal;
    } catch {
      // Called outside an activity (a test): only the time limit applies.
    }
    const limit = AbortSignal.timeout(ms);
    return cancelled ? AbortSignal.any([limit, cancelled]) : limit;
  }

  function timeoutOf(connection: Connection): number {
    return (connection.settings as ConnectionSettings).timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  }

  function authOf(connection: Connection): OutboundAuth {
    return openConnectionAuth(masterKey, connection) ?? { type: 'none' };
  }

  /** POSTs a body; 2xx answers, 408/429/5xx and network failures are retried, other 4xx are not. */
  async function post(
    connection: Connection,
    url: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; text: string }> {
    const auth = authOf(connection);
    const seconds = timeoutOf(connection);
    const where = destination(connection, url);
    for (let attempt = 0; ; attempt++) {
      let authorization: string | null;
      try {
        authorization = await tokens.authorization(connection.id, auth);
      } catch (error) {
        if (error instanceof TokenError && !error.retryable)
          throw permanent(`the token endpoint refused LabRelay's credentials: ${error.message}`);
        throw error;
      }
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          body,
          headers: { ...headers, ...(authorization ? { authorization } : {}) },
          signal: attemptSignal(seconds * 1000),
          redirect: 'manual',
        });
      } catch (error) {
        if (error instanceof Error && error.name === 'TimeoutError')
          throw new Error(`${where} did not answer within ${seconds} s`, { cause: error });
        const cause =
          error instanceof Error
            ? error.cause instanceof Error
              ? error.cause.message
              : error.message
            : String(error);
        throw new Error(`${where} could not be reached: ${cause}`, { cause: error });
      }
      let text: string;
      try {
        text = (await response.text()).slice(0, KEEP_RESPONSE_CHARS);
      } catch (error) {
        throw new Error(`${where} did not finish its answer within ${seconds} s`, { cause: error });
      }
      // An expired or revoked token: drop it and try once more with a fresh one.
      if (response.status === 401 && attempt === 0 && auth.type !== 'none') {
        tokens.invalidate(connection.id);
        continue;
      }
      if (response.ok) return { status: response.status, text };
      const said = `${where} answered ${response.status}${text ? `: ${text.slice(0, 300)}` : ''}`;
      if (response.status === 408 || response.status === 429 || response.status >= 500) throw new Error(said);
      throw permanent(said);
    }
  }

  function endpointUrl(connection: Connection): string {
    const url = (connection.endpoint as { url?: unknown } | null)?.url;
    if (typeof url !== 'string') throw permanent(`connection ${connection.name} has no endpoint URL`);
    return url.replace(/\/+$/, '');
  }

  async function toFhirServer(connection: Connection, result: ReleasedResult): Promise<Sent> {
    const payload = JSON.stringify(toDeliveryBundle(result));
    const answer = await post(connection, endpointUrl(connection), payload, {
      'content-type': 'application/fhir+json',
      accept: 'application/fhir+json',
    });
    let outcome: { reportLocation: string | null };
    try {
      outcome = deliveryOutcome(JSON.parse(answer.text));
    } catch (error) {
      // The server said 2xx but not what it did: it may have stored it, so retrying is safe (conditional).
      throw new Error(`the FHIR server's answer could not be read: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return { payload, response: `${answer.status} ${answer.text}`, remoteReference: outcome.reportLocation };
  }

  async function toWebhook(
    connection: Connection,
    result: ReleasedResult,
    delivery: { id: string; sends: number },
    tenantSlug: string,
  ): Promise<Sent> {
    const payload = JSON.stringify(webhookBody(result, delivery.id, tenantSlug));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'labrelay-event': 'result.released',
      'labrelay-delivery-id': delivery.id,
      // Retries of one send carry the same key, so a receiver keeps them once; a re-send asked for
      // by a person is a new send with its own key, which the receiver must not discard.
      'idempotency-key': `${delivery.id}/${delivery.sends}`,
    };
    const secret = openConnectionSecret(masterKey, connection);
    if (secret) {
      headers['labrelay-signature'] = signBody(secret, payload, Math.floor(Date.now() / 1000));
    }
    const answer = await post(connection, endpointUrl(connection), payload, headers);
    return { payload, response: `${answer.status} ${answer.text}`, remoteReference: null };
  }

  async function toMllp(
    connection: Connection,
    result: ReleasedResult,
    delivery: { id: string; sends: number },
  ): Promise<Sent> {
    const endpoint = connection.endpoint as { host?: unknown; port?: unknown; tls?: { ca?: string } } | null;
    if (typeof endpoint?.host !== 'string' || typeof endpoint.port !== 'number')
      throw permanent(`connection ${connection.name} has no MLLP host and port`);
    const settings = connection.settings as ConnectionSettings;
    // The same delivery keeps its control id across retries, so the receiver can tell a repeat.
    const controlId = `LR${delivery.id.replace(/-/g, '').slice(0, 14)}${String(delivery.sends).padStart(4, '0')}`;
    const payload = toOruR01(result, {
      sendingApplication: settings.sendingApplication ?? 'LABRELAY',
      sendingFacility: settings.sendingFacility ?? 'LABRELAY',
      receivingApplication: settings.receivingApplication ?? '',
      receivingFacility: settings.receivingFacility ?? connection.name,
      controlId,
      at: new Date(),
      processingId: connection.environment === 'sandbox' ? 'T' : 'P',
    });
    const client = mllp.get(connection.id, {
      host: endpoint.host,
      port: endpoint.port,
      ackTimeoutMs: timeoutOf(connection) * 1000,
      ...(endpoint.tls
        ? { tls: { ...(endpoint.tls.ca ? { ca: endpoint.tls.ca } : {}), rejectUnauthorized: true } }
        : {}),
    });
    // Another delivery may be using the connection: wait for it at most one timeout, so the
    // attempt stays within its bound (then it is retried like any other failure).
    const ack = await client.send(payload, { signal: attemptSignal(timeoutOf(connection) * 1000) });
    const response = ack.ack;
    if (ack.code === 'AA') return { payload, response, remoteReference: controlId };
    const outcome: AckOutcome =
      ack.code === 'AE'
        ? (settings.onApplicationError ?? ACK_OUTCOME.retry)
        : (settings.onApplicationReject ?? ACK_OUTCOME.deadLetter);
    const said = `the receiver answered ${ack.code}${ack.text ? `: ${ack.text}` : ''}`;
    if (outcome === ACK_OUTCOME.delivered) return { payload, response, remoteReference: controlId };
    if (outcome === ACK_OUTCOME.deadLetter) throw permanent(said);
    throw new Error(said);
  }

  return {
    /**
     * Records where a released report goes: the connections the routing decision names, else every
     * enabled outbound connection of the report's environment. A sandbox result is never delivered
     * to a production connection (nor a production result to a sandbox one): a rule that names one
     * gets a dead letter saying so.
     */
    async planReportDeliveries(
      ref: ReportRef,
    ): Promise<{ deliveries: { deliveryId: string; workflowId: string }[] }> {
      const tenant = await loadTenant(db, ref.tenantId);
      const report = await tenantScope(db, ref.tenantId)
        .selectFrom('reports')
        .select(['id', 'message_id', 'routing', 'stage'])
        .where('id', '=', ref.reportId)
        .executeTakeFirst();
      if (!report)
        throw ApplicationFailure.nonRetryable(`report ${ref.reportId} does not exist`, 'ReportNotFound');
      if (report.stage !== REPORT_STAGE.released) return { deliveries: [] };
      const environment = await environmentOfReport(ref.tenantId, report.message_id);
      const connections = await tenantScope(db, ref.tenantId)
        .selectFrom('connections')
        .selectAll()
        .where('direction', '=', 'outbound')
        .where('disabled_at', 'is', null)
        .orderBy('created_at')
        .execute();
      const named = ((report.routing as RecordedRoutingDecision | null)?.destinations ?? []).map((d) =>
        d.toLowerCase(),
      );
      const critical = await tenantScope(db, ref.tenantId)
        .selectFrom('critical_results')
        .select('id')
        .where('report_id', '=', ref.reportId)
        .executeTakeFirst();
      const planned: PlannedDelivery[] = [];
      const unknown: string[] = [];
      if (named.length > 0) {
        for (const name of new Set(named)) {
          const connection = connections.find((c) => c.name.toLowerCase() === name);
          if (!connection) {
            unknown.push(name);
            continue;
          }
          planned.push({
            tenantId: ref.tenantId,
            reportId: ref.reportId,
            connectionId: connection.id,
            environment,
            critical: !!critical,
            ...(connection.environment !== environment
              ? {
                  refusal: `a ${environment} result is never delivered to the ${connection.environment} connection ${connection.name}`,
                }
              : {}),
          });
        }
      } else {
        for (const connection of connections.filter((c) => c.environment === environment))
          planned.push({
            tenantId: ref.tenantId,
            reportId: ref.reportId,
            connectionId: connection.id,
            environment,
            critical: !!critical,
          });
      }
      const deliveries = await db.transaction().execute(async (trx) => {
        const rows = await planDeliveries(trx, planned);
        for (const name of unknown)
          await audit(trx, ref.tenantId, 'delivery.unknown_destination', `report/${ref.reportId}`, {
            destination: name,
            message: `the routing rules name destination "${name}", but tenant ${tenant.slug} has no enabled outbound connection of that name`,
          });
        return rows;
      });
      return {
        deliveries: deliveries
          .filter((d) => d.status === DELIVERY_STATUS.pending)
          .map((d) => ({ deliveryId: d.id, workflowId: `delivery/${d.id}/${d.sends}` })),
      };
    },

    /** Marks a delivery under way and says how hard to try: its connection's attempts, critical or not. */
    async beginDelivery(input: DeliveryRef & { workflowId: string }): Promise<DeliveryPlan> {
      const { delivery, connection } = await loadDelivery(db, input);
      const settings = connection.settings as ConnectionSettings;
      // A send that a re-send has replaced (another workflow id) does not start.
      const ours = delivery.workflow_id === null || delivery.workflow_id === input.workflowId;
      const started =
        ours &&
        delivery.status === DELIVERY_STATUS.pending &&
        (await updateDelivery(
          db,
          input.tenantId,
          input.deliveryId,
          { status: DELIVERY_STATUS.delivering, workflowId: input.workflowId },
          { status: DELIVERY_STATUS.pending },
        ));
      const timeout = timeoutOf(connection);
      const httpSeconds = 2 * (TOKEN_REQUEST_TIMEOUT_MS / 1000 + timeout);
      const mllpSeconds = timeout + MLLP_CONNECT_SECONDS + timeout;
      return {
        status: started ? DELIVERY_STATUS.delivering : ours ? delivery.status : SUPERSEDED,
        maxAttempts: Math.max(1, Math.min(settings.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, 100)),
        critical: delivery.critical,
        criticalDeliveryMinutes: CRITICAL_DELIVERY_MINUTES,
        attemptSeconds: Math.ceil(Math.max(httpSeconds, mllpSeconds) + ATTEMPT_MARGIN_SECONDS),
      };
    },

    /**
     * One attempt at delivering: the report as it is now (a correction sends the corrected values),
     * to the connection's FHIR server, MLLP receiver or webhook. Each attempt is recorded with what
     * was sent and what came back. Throws to retry; a permanent refusal is non-retryable.
     */
    async deliverReport(input: DeliverySend): Promise<{ remoteReference: string | null }> {
      const { delivery, connection } = await loadDelivery(db, input);
      const guard = input.workflowId ? { workflowId: input.workflowId } : {};
      if (input.workflowId && delivery.workflow_id !== input.workflowId)
        throw ApplicationFailure.nonRetryable(
          `delivery ${input.deliveryId} was sent again by a newer send; this one stops`,
          'DeliverySuperseded',
        );
      if (delivery.status === DELIVERY_STATUS.delivered)
        return { remoteReference: delivery.remote_reference };
      const tenant = await loadTenant(db, input.tenantId);
      if (connection.disabled_at) throw permanent(`the connection ${connection.name} was disabled`);
      const result = await loadReleasedResult(db, tenant, delivery.report_id);
      if (!result) throw permanent(`report ${delivery.report_id} no longer exists`);
      let sent: Sent;
      try {
        if (connection.format === 'fhir') sent = await toFhirServer(connection, result);
        else if (connection.format === 'hl7v2') sent = await toMllp(connection, result, delivery);
        else if (connection.format === 'webhook' || connection.format === 'json')
          sent = await toWebhook(connection, result, delivery, tenant.slug);
        else throw permanent(`results cannot be delivered in format ${connection.format}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        await updateDelivery(
          db,
          input.tenantId,
          input.deliveryId,
          { attempted: true, lastError: message },
          guard,
        );
        logger.warn(
          {
            tenantId: input.tenantId,
            deliveryId: input.deliveryId,
            connectionId: connection.id,
            error: message,
          },
          'delivery attempt failed',
        );
        throw error;
      }
      await db.transaction().execute(async (trx) => {
        const recorded = await updateDelivery(
          trx,
          input.tenantId,
          input.deliveryId,
          {
            attempted: true,
            status: DELIVERY_STATUS.delivered,
            payload: sent.payload,
            response: sent.response.slice(0, KEEP_RESPONSE_CHARS),
            remoteReference: sent.remoteReference,
            lastError: null,
          },
          guard,
        );
        // A re-send took over while this attempt was under way: that send records its own outcome.
        if (!recorded) return;
        await audit(trx, input.tenantId, 'delivery.delivered', `delivery/${input.deliveryId}`, {
          reportId: delivery.report_id,
          connection: connection.name,
          remoteReference: sent.remoteReference,
        });
      });
      return { remoteReference: sent.remoteReference };
    },

    /** The last attempt failed (or the destination refused for good): visible, re-sendable, audited. */
    async deadLetterDelivery(input: DeliverySend & { reason: string }): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const delivery = await findDelivery(trx, input.tenantId, input.deliveryId);
        if (!delivery || delivery.status === DELIVERY_STATUS.delivered) return;
        const recorded = await updateDelivery(
          trx,
          input.tenantId,
          input.deliveryId,
          { status: DELIVERY_STATUS.deadLetter, deadLetterReason: input.reason },
          input.workflowId ? { workflowId: input.workflowId } : {},
        );
        if (!recorded) return;
        await audit(trx, input.tenantId, 'delivery.dead_lettered', `delivery/${input.deliveryId}`, {
          reportId: delivery.report_id,
          reason: input.reason,
        });
      });
    },

    /** A critical result not delivered in time (or dead-lettered): a stat task for a person. */
    async escalateDelivery(
      input: DeliveryRef & { workflowId: string; reason: string },
    ): Promise<{ taskId: string }> {
      return db.transaction().execute(async (trx) => {
        const { delivery, connection } = await loadDelivery(trx, input);
        const { task, created } = await openTask(trx, {
          tenantId: input.tenantId,
          dedupeKey: `delivery/${delivery.id}/${delivery.sends}`,
          kind: TASK_KIND.deliveryFailed,
          priority: TASK_PRIORITY.stat,
          title: `Critical result not delivered to ${connection.name}`,
          reason: `${input.reason}; make sure the result reaches its destination (call it through, or re-send the delivery)`,
          reportId: delivery.report_id,
          workflowId: input.workflowId,
          // The attempt's error stays with the delivery (admins see it there), not in the task.
          payload: { deliveryId: delivery.id, connection: connection.name },
        });
        if (created)
          await audit(trx, input.tenantId, 'delivery.escalated', `delivery/${delivery.id}`, {
            taskId: task.id,
            reason: input.reason,
          });
        return { taskId: task.id };
      });
    },

    /** The stuck delivery arrived after all: its task is closed, nobody needs to act. */
    async closeDeliveryTask(input: { tenantId: string; taskId: string }): Promise<void> {
      await db.transaction().execute(async (trx) => {
        const task = await tenantScope(trx, input.tenantId)
          .selectFrom('tasks')
          .selectAll()
          .where('id', '=', input.taskId)
          .forUpdate()
          .executeTakeFirst();
        if (!task || (task.status !== TASK_STATUS.open && task.status !== TASK_STATUS.claimed)) return;
        await updateTask(trx, input.tenantId, input.taskId, {
          status: TASK_STATUS.cancelled,
          decision: { decision: 'delivered', comment: 'the result was delivered after all' },
          completedAt: new Date(),
        });
        await audit(trx, input.tenantId, 'task.cancelled', `task/${input.taskId}`, {
          reason: 'the result was delivered after all',
        });
      });
    },
  };
}

/**
 * What a webhook receives: the event, the delivery id (the same on every retry) and the report as
 * a FHIR R4 collection Bundle (DiagnosticReport, its Observations, the Patient), signed like every
 * LabRelay request (`LabRelay-Signature`).
 */
export function webhookBody(result: ReleasedResult, deliveryId: string, tenantSlug: string) {
  const resources = [
    toDiagnosticReport(result.report),
    ...result.observations.map(toObservation),
    ...(result.patient ? [toPatient(result.patient)] : []),
  ];
  // Entries are named by urn:uuid, so references between them use those names too
  // (https://hl7.org/fhir/R4/bundle.html#references): a receiver resolves them inside the Bundle.
  const inBundle = new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, `urn:uuid:${r.id}`]));
  return {
    event: 'result.released',
    deliveryId,
    tenant: tenantSlug,
    reportId: result.report.id,
    bundle: {
      resourceType: 'Bundle',
      type: 'collection',
      entry: resources.map((resource) => ({
        fullUrl: `urn:uuid:${resource.id}`,
        resource: referencesWithin(resource, inBundle),
      })),
    },
  };
}

/** A copy of `value` whose `reference`s to resources in `names` use the Bundle's names for them. */
function referencesWithin<T>(value: T, names: Map<string, string>): T {
  if (Array.isArray(value)) return value.map((v: unknown) => referencesWithin(v, names)) as T;
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    copy[key] =
      key === 'reference' && typeof v === 'string' && names.has(v)
        ? names.get(v)
        : referencesWithin(v, names);
  }
  return copy as T;
}
