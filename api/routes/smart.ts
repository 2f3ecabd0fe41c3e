import { Hono } from 'hono';
import type { AppEnv } from '../env.ts';

/** SMART on FHIR EHR launch of LabRelay's read-only results app (being written). */
export function smartRoutes() {
  return new Hono<AppEnv>();
}
