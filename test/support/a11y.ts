import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

const require = createRequire(import.meta.url);

export interface A11yViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * Runs axe-core (WCAG 2 A and AA rules) on the page as it is now and returns the serious and
 * critical violations: unlabelled controls, buttons and links without names, missing landmarks'
 * names, contrast too low to read.
 */
export async function accessibilityViolations(page: Page): Promise<A11yViolation[]> {
  await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
  // Runs in the page; the test's own TypeScript has no DOM types, hence the loose typing.
  const results = await page.evaluate(async () => {
    const scope = globalThis as unknown as {
      axe: { run: (context: unknown, options: unknown) => Promise<any> };
      document: unknown;
    };
    return scope.axe.run(scope.document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
  });
  return (
    results.violations as { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[]
  )
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
}
