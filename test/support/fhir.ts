import { expect } from 'vitest';

/**
 * Structural checks of FHIR R4 JSON that a receiving system relies on: resource types, required
 * elements, reference shapes, coded values with systems. (No FHIR validator runs offline here.)
 */
export function expectValidSearchset(bundle: any): void {
  expect(bundle.resourceType).toBe('Bundle');
  expect(bundle.type).toBe('searchset');
  expect(Number.isInteger(bundle.total)).toBe(true);
  expect(bundle.link.find((l: any) => l.relation === 'self')?.url).toMatch(/^https?:\/\//);
  for (const entry of bundle.entry ?? []) {
    expect(entry.fullUrl).toMatch(new RegExp(`/${entry.resource.resourceType}/${entry.resource.id}$`));
    expect(['match', 'include', 'outcome']).toContain(entry.search.mode);
    expectValidResource(entry.resource);
  }
}

export function expectValidResource(resource: any): void {
  expect(typeof resource.id).toBe('string');
  expect(resource.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
  switch (resource.resourceType) {
    case 'DiagnosticReport':
      expect([
        'registered',
        'partial',
        'preliminary',
        'final',
        'amended',
        'corrected',
        'appended',
        'cancelled',
        'entered-in-error',
        'unknown',
      ]).toContain(resource.status);
      expectCodeable(resource.code);
      for (const r of resource.result ?? []) expect(r.reference).toMatch(/^Observation\/[A-Za-z0-9\-.]+$/);
      if (resource.subject) expect(resource.subject.reference).toMatch(/^Patient\//);
      break;
    case 'Observation':
      expect([
        'registered',
        'preliminary',
        'final',
        'amended',
        'corrected',
        'cancelled',
        'entered-in-error',
        'unknown',
      ]).toContain(resource.status);
      expectCodeable(resource.code);
      for (const i of resource.interpretation ?? []) expectCodeable(i);
      if (resource.valueQuantity) expect(typeof resource.valueQuantity.value).toBe('number');
      break;
    case 'Patient':
      for (const i of resource.identifier ?? []) expect(typeof i.value).toBe('string');
      if (resource.gender) expect(['male', 'female', 'other', 'unknown']).toContain(resource.gender);
      if (resource.birthDate) expect(resource.birthDate).toMatch(/^\d{4}(-\d{2}(-\d{2})?)?$/);
      break;
    default:
      throw new Error(`unexpected resource type ${resource.resourceType}`);
  }
}

function expectCodeable(concept: any): void {
  expect(Array.isArray(concept.coding)).toBe(true);
  for (const c of concept.coding) {
    expect(typeof c.code).toBe('string');
    if (c.system) expect(c.system).toMatch(/^(https?:|urn:)/);
  }
}
