import type { ConsoleServices } from '../../../../api/console.ts';

/**
 * The host process's services (database, configuration). The console runs inside the API process,
 * which registers them before loading the console; the console never opens a database of its own.
 */
export function services(): ConsoleServices {
  const found = (globalThis as Record<symbol, unknown>)[Symbol.for('labrelay.console.services')];
  if (!found) throw new Error('the LabRelay console must be served by the LabRelay API process (npm start)');
  return found as ConsoleServices;
}
