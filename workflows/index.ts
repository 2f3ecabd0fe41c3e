// The worker's workflow bundle: every workflow LabRelay runs.
export { orderWorkflow } from './order-workflow.ts';
