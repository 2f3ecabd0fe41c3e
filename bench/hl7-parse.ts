// Prints HL7 v2 parse-and-map throughput of our parser on realistic ORU^R01 messages.
// A benchmark, not a test: it prints figures and never fails. Run: npm run bench
import { parseHl7 } from '../adapters/hl7v2/message.ts';
import { oruToResultMessage } from '../adapters/hl7v2/oru.ts';
import { basicMetabolicPanel } from '../test/fixtures/hl7.ts';

const messages = Array.from({ length: 1000 }, (_, i) =>
  basicMetabolicPanel({ controlId: `BENCH-${i}`, placer: `ORD-${i}` }),
);
const bytes = messages.reduce((n, m) => n + Buffer.byteLength(m), 0);

function run(seconds: number): { perSecond: number; mbPerSecond: number } {
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  const started = performance.now();
  while (performance.now() < deadline) {
    for (const m of messages) oruToResultMessage(parseHl7(m));
    count += messages.length;
  }
  const elapsed = (performance.now() - started) / 1000;
  return { perSecond: count / elapsed, mbPerSecond: (count * (bytes / messages.length)) / elapsed / 1e6 };
}

run(1); // warm up the JIT
const result = run(3);
const heap = process.memoryUsage().heapUsed / 1e6;
console.log(
  `HL7 ORU^R01 parse + map to canonical: ${Math.round(result.perSecond).toLocaleString()} messages/s, ${result.mbPerSecond.toFixed(1)} MB/s (message ~${Math.round(bytes / messages.length)} bytes), heap ${heap.toFixed(0)} MB, Node ${process.version}`,
);
