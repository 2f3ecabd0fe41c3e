import type { Browser, Page } from 'playwright-core';
import { admin } from './labrelay.ts';

export type ConsoleRoleName = 'admin' | 'reviewer' | 'provider';

/** A console user made through the admin API (the same code as the console's users page). */
export async function createConsoleUser(
  baseUrl: string,
  input: {
    email: string;
    name?: string;
    password?: string;
    roles: { tenant: string; role: ConsoleRoleName; providerId?: string }[];
  },
): Promise<{ id: string; email: string; password: string }> {
  const password = input.password ?? `a long test password for a ${input.roles[0]?.role ?? 'user'}`;
  const created = await admin<{ id: string }>(
    baseUrl,
    'POST',
    '/v1/admin/users',
    { email: input.email, name: input.name ?? input.email.split('@')[0], password, roles: input.roles },
    201,
  );
  return { id: created.id, email: input.email, password };
}

/**
 * Waits until the console's page has hydrated (the root layout marks it): typing into a field
 * before then can be undone by hydration.
 */
export async function waitForHydration(page: Page): Promise<void> {
  await page.locator('html[data-hydrated="true"]').waitFor({ state: 'attached' });
}

/** Signs in through the login form as a person would, and waits for the overview. */
export async function signIn(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/login`);
  await waitForHydration(page);
  await page.getByLabel('E-mail address').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname !== '/login');
}

/** A fresh browser context (own cookies) signed in as the person. */
export async function signedInPage(
  browser: Browser,
  baseUrl: string,
  email: string,
  password: string,
): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, baseUrl, email, password);
  return page;
}
