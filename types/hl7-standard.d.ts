// hl7-standard ships no type declarations; this covers the part the parse benchmark calls.
declare module 'hl7-standard' {
  export default class HL7 {
    constructor(raw: string);
    transform(): void;
    get(field: string, index?: number): unknown;
    getSegments(name: string): unknown[];
  }
}
