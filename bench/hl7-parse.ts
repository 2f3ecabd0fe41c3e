// HL7 v2 parse throughput, side by side on the same realistic ORU^R01 messages: our parser (alone,
// and with the mapping to the canonical model), @medplum/core's Hl7Message and hl7-standard.
// Each peer parses the message and reads the same fields (PID-3.1, every OBX-5), so lazy parsers
// are not credited for work they skip. A benchmark, not a test: it prints figures, never fails.
// Run: npm run bench
import { Hl7Message as MedplumHl7Message } from '@medplum/core';
import HL7Standard from 'hl7-standard';
import { parseHl7 } from '../adapters/hl7v2/message.ts';
import { oruToResultMessage } from '../adapters/hl7v2/oru.ts';
import { basicMetabolicPanel } from '../test/fixtures/hl7.ts';

const messages = Array.from({ length: 1000 }, (_, i) =>
  basicMetabolicPanel({ controlId: `BENCH-${i}`, placer: `ORD-${i}`, mrn: `MRN-${i}` }),
);
const bytes = messages.reduce((n, m) => n + Buffer.byteLength(m), 0);

let sink = 0;
const parsers: [string, (m: string) => void][] = [
  [
    'LabRelay parseHl7',
    (m) => {
      const msg = parseHl7(m);
      sink += msg.segment('PID')!.get(3).length;
      for (const obx of msg.segments) if (obx.name === 'OBX') sink += obx.field(5).component().length;
    },
  ],
  [
    'LabRelay parseHl7 + map to canonical',
    (m) => void (sink += oruToResultMessage(parseHl7(m)).reports.length),
  ],
  [
    '@medplum/core Hl7Message',
    (m) => {
      const msg = MedplumHl7Message.parse(m);
      sink += (msg.getSegment('PID')?.getField(3)?.getComponent(1) ?? '').length;
      for (const obx of msg.getAllSegments('OBX')) sink += (obx.getField(5)?.getComponent(1) ?? '').length;
    },
  ],
  [
    'hl7-standard',
    (m) => {
      const msg = new HL7Standard(m);
      msg.transform();
      sink += String(msg.get('PID.3.1') ?? '').length;
      const count = msg.getSegments('OBX').length;
      for (let i = 0; i < count; i++) sink += String(msg.get('OBX.5', i) ?? '').length;
    },
  ],
];

function run(parse: (m: string) => void, seconds: number): number {
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  const started = performance.now();
  while (performance.now() < deadline) {
    for (const m of messages) parse(m);
    count += messages.length;
  }
  return count / ((performance.now() - started) / 1000);
}

console.log(
  `HL7 ORU^R01 parse throughput (message ~${Math.round(bytes / messages.length)} bytes), Node ${process.version}:`,
);
for (const [name, parse] of parsers) {
  run(parse, 1); // warm up the JIT
  const perSecond = run(parse, 3);
  console.log(
    `  ${name.padEnd(38)} ${Math.round(perSecond).toLocaleString().padStart(9)} messages/s  ${((perSecond * bytes) / messages.length / 1e6).toFixed(1).padStart(6)} MB/s`,
  );
}
if (sink === 0) console.log('(nothing was read)');
