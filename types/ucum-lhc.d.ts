// @lhncbc/ucum-lhc ships no type declarations; this covers the part LabRelay calls.
declare module '@lhncbc/ucum-lhc' {
  interface ConversionResult {
    status: 'succeeded' | 'failed' | 'error';
    toVal: number | null;
    msg: string[];
  }
  interface UcumLhcUtils {
    convertUnitTo(
      fromUnit: string,
      value: number,
      toUnit: string,
      options?: { molecularWeight?: number; charge?: number },
    ): ConversionResult;
    validateUnitString(unit: string): { status: 'valid' | 'invalid' | 'error'; msg: string[] };
  }
  const ucum: { UcumLhcUtils: { getInstance(): UcumLhcUtils } };
  export default ucum;
}
