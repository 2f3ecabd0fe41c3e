// The worker's workflow bundle: every workflow LabRelay runs.
export { orderWorkflow } from './order-workflow.ts';
export { criticalResultWorkflow } from './critical-result-workflow.ts';
export { deliveryWorkflow } from './delivery-workflow.ts';
