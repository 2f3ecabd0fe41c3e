import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics served at `/metrics`. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'labrelay_' });
  return {
    registry,
    inboundMessages: new Counter({
      name: 'labrelay_inbound_messages_total',
      help: 'Inbound messages by transport, format and outcome (accepted, duplicate, rejected)',
      labelNames: ['transport', 'format', 'outcome'] as const,
      registers: [registry],
    }),
    httpRequests: new Histogram({
      name: 'labrelay_http_request_duration_seconds',
      help: 'HTTP request duration by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    workflowStarts: new Counter({
      name: 'labrelay_workflow_starts_total',
      help: 'Order workflow starts or signals by outcome (ok, failed)',
      labelNames: ['outcome', 'source'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'labrelay_rate_limited_total',
      help: 'Tenant requests refused with 429 because their credential was over its rate limit',
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
