import { services } from './services.ts';

export interface WorkflowView {
  workflowId: string;
  /** RUNNING, COMPLETED, FAILED… as Temporal names it; null when Temporal could not be asked. */
  status: string | null;
  type: string | null;
  startedAt: string | null;
  closedAt: string | null;
  historyLength: number | null;
  /** Why the status is unknown (Temporal unreachable, no such workflow yet). */
  problem: string | null;
}

const DESCRIBE_DEADLINE_MS = 3_000;

/**
 * What Temporal says of each workflow (Temporal is the source of truth for process state). A page
 * must still show when Temporal is away: each workflow then says why its status is unknown.
 */
export async function describeWorkflows(workflowIds: string[]): Promise<WorkflowView[]> {
  const client = services().app.temporal();
  return Promise.all(
    workflowIds.map(async (workflowId): Promise<WorkflowView> => {
      const unknown = (problem: string) => ({
        workflowId,
        status: null,
        type: null,
        startedAt: null,
        closedAt: null,
        historyLength: null,
        problem,
      });
      if (!client) return unknown('Temporal is not reachable right now.');
      try {
        const d = await client.connection.withDeadline(Date.now() + DESCRIBE_DEADLINE_MS, () =>
          client.workflow.getHandle(workflowId).describe(),
        );
        return {
          workflowId,
          status: d.status.name,
          type: d.type,
          startedAt: d.startTime.toISOString(),
          closedAt: d.closeTime?.toISOString() ?? null,
          historyLength: d.historyLength,
          problem: null,
        };
      } catch (error) {
        const name = (error as Error).name;
        return unknown(
          name === 'WorkflowNotFoundError'
            ? 'Temporal has no such workflow (not started yet, or its history has expired).'
            : 'Temporal did not answer; try again later.',
        );
      }
    }),
  );
}
