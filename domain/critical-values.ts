/**
 * A critical-value limit for one analyte: a result beyond it must reach a person at once
 * (CLSI GP47). Limits are in `unit`; results in other units are converted before comparison.
 */
export interface CriticalLimit {
  loinc: string;
  name: string;
  low: number | null;
  high: number | null;
  /** UCUM unit the limits are written in. */
  unit: string;
  /** g/mol, for converting between molar and mass concentrations (mmol/L <-> mg/dL). */
  molecularWeight?: number;
  /** Ion charge, for converting equivalents (mEq/L) to moles. */
  charge?: number;
}

/** The default critical table of DESIGN.md; each tenant edits its own copy. */
export const DEFAULT_CRITICAL_TABLE: readonly CriticalLimit[] = [
  { loinc: '2345-7', name: 'Glucose', low: 40, high: 450, unit: 'mg/dL', molecularWeight: 180.156 },
  {
    loinc: '2823-3',
    name: 'Potassium',
    low: 2.8,
    high: 6.2,
    unit: 'mmol/L',
    molecularWeight: 39.098,
    charge: 1,
  },
  { loinc: '2951-2', name: 'Sodium', low: 120, high: 160, unit: 'mmol/L', molecularWeight: 22.99, charge: 1 },
  {
    loinc: '17861-6',
    name: 'Calcium',
    low: 6.0,
    high: 13.0,
    unit: 'mg/dL',
    molecularWeight: 40.078,
    charge: 2,
  },
  { loinc: '718-7', name: 'Hemoglobin', low: 6.0, high: 20, unit: 'g/dL' },
  { loinc: '777-3', name: 'Platelets', low: 20, high: 1000, unit: '10*3/uL' },
  { loinc: '6690-2', name: 'WBC', low: 2.0, high: 30, unit: '10*3/uL' },
  { loinc: '6301-6', name: 'INR', low: null, high: 5.0, unit: '{INR}' },
  { loinc: '2744-1', name: 'Arterial pH', low: 7.2, high: 7.6, unit: '[pH]' },
  { loinc: '2019-8', name: 'pCO2', low: 20, high: 70, unit: 'mm[Hg]' },
  { loinc: '2524-7', name: 'Lactate', low: null, high: 4.0, unit: 'mmol/L', molecularWeight: 90.08 },
  {
    loinc: '19123-9',
    name: 'Magnesium',
    low: 1.0,
    high: 4.7,
    unit: 'mg/dL',
    molecularWeight: 24.305,
    charge: 2,
  },
];
