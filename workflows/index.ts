// The workflow bundle's entry: every workflow type the orchestrator hosts.
export { sessionWorkflow } from './session.js';
export { failoverWorkflow } from './failover.js';
export { watchdogWorkflow } from './watchdog.js';
export { backupWorkflow } from './backup.js';
export { restoreWorkflow } from './restore.js';
export { dispatcherWorkflow } from './dispatcher.js';
export { hostFailoverWorkflow } from './host-failover.js';
