import { createCriticalActivities } from './critical.ts';
import { createDeliveryActivities } from './deliveries.ts';
import type { ActivityDeps } from './deps.ts';
import { createNotificationActivities } from './notifications.ts';
import { createOrderActivities } from './orders.ts';

export type { ActivityDeps, ReportRef } from './deps.ts';
export type { CriticalStart } from './orders.ts';

/**
 * Every workflow side effect, one function each. Every one is idempotent: Temporal may run an
 * activity again after a worker dies, and the second run must leave the same data as the first.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createOrderActivities(deps),
    ...createCriticalActivities(deps),
    ...createNotificationActivities(deps),
    ...createDeliveryActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
