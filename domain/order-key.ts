import type { LabReport } from './model.ts';

/**
 * The key that names one order across messages: the sending facility plus the placer order number
 * (else the filler's). Every result for the same order lands in the same workflow.
 *
 * @example orderKeyOf('ACME_LAB', { placerOrderNumber: 'ORD-1', fillerOrderNumber: null }) // 'ACME_LAB|P|ORD-1'
 */
export function orderKeyOf(
  sendingFacility: string,
  report: Pick<LabReport, 'placerOrderNumber' | 'fillerOrderNumber'>,
): string {
  const [kind, number] = report.placerOrderNumber
    ? ['P', report.placerOrderNumber]
    : ['F', report.fillerOrderNumber ?? ''];
  return `${sendingFacility}|${kind}|${number}`;
}

/**
 * The Temporal workflow id of an order: stable for tenant + order key, so a start is idempotent and
 * a later result for the same order signals the running workflow.
 */
export function orderWorkflowId(tenantId: string, orderKey: string): string {
  return `order/${tenantId}/${orderKey}`;
}
