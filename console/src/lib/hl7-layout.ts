/**
 * An HL7 v2 message laid out to read: one segment a line, its fields numbered as the spec numbers
 * them (PID-3, OBX-5), so a reviewer can point at what the sender wrote. Only splits text; the
 * message is parsed for real in adapters/hl7v2.
 */
export interface Hl7LineView {
  name: string;
  /** The field separator this message uses (MSH-1), shown between fields. */
  separator: string;
  /** Fields after the segment name, each with its spec position ("PID-3"). */
  fields: { position: string; text: string }[];
}

/**
 * @example layoutHl7('MSH|^~\\&|LIS\rPID|1||MRN1')
 * // [{ name: 'MSH', separator: '|', fields: [{ position: 'MSH-2', text: '^~\\&' }, { position: 'MSH-3', text: 'LIS' }] },
 * //  { name: 'PID', separator: '|', fields: [{ position: 'PID-1', text: '1' }, { position: 'PID-2', text: '' }, …] }]
 */
export function layoutHl7(raw: string): Hl7LineView[] {
  const segments = raw.split(/\r\n|\r|\n/).filter((s) => s.trim() !== '');
  const msh = segments.find((s) => s.startsWith('MSH'));
  const separator = msh && msh.length > 3 ? msh[3]! : '|';
  return segments.map((segment) => {
    const name = segment.slice(0, 3);
    const rest = segment.length > 3 ? segment.slice(4) : null;
    // MSH-1 is the separator itself, so MSH's first field after it is MSH-2.
    const first = name === 'MSH' ? 2 : 1;
    return {
      name,
      separator,
      fields:
        rest === null
          ? []
          : rest.split(separator).map((text, i) => ({ position: `${name}-${i + first}`, text })),
    };
  });
}
