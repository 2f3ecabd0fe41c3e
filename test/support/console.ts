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
 * A provider as a tenant has them: the provider record (the admin API's providers), then a console
 * user whose provider role names it.
 */
export async function createProviderUser(
  baseUrl: string,
  input: { email: string; name?: string; password?: string; tenant: string },
): Promise<{ id: string; email: string; password: string; providerId: string }> {
  const name = input.name ?? input.email.split('@')[0]!;
  const provider = await admin<{ id: string }>(
    baseUrl,
    'POST',
    `/v1/admin/tenants/${input.tenant}/providers`,
    {
      name,
      email: input.email,
      roles: ['ordering'],
    },
  );
  const user = await createConsoleUser(baseUrl, {
    email: input.email,
    name,
    ...(input.password ? { password: input.password } : {}),
    roles: [{ tenant: input.tenant, role: 'provider', providerId: provider.id }],
  });
  return { ...user, providerId: provider.id };
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

/**
 * Gives a person a role on the tenant's Users page as an admin does there (a new account gets its
 * first password; a provider role names the provider record the person is), and waits for the page
 * to confirm it. The page is the Users page, hydrated.
 */
export async function addPersonOnUsersPage(
  page: Page,
  person: { email: string; name: string; password: string; role: ConsoleRoleName; provider?: string },
): Promise<void> {
  await page.getByLabel('E-mail address').fill(person.email);
  await page.getByLabel('Name', { exact: true }).fill(person.name);
  await page.getByLabel(/First password/).fill(person.password);
  await page.getByLabel('Role', { exact: true }).selectOption(person.role);
  if (person.provider) await page.getByLabel('Which provider').selectOption({ label: person.provider });
  await page.getByRole('button', { name: 'Add' }).click();
  await page
    .getByRole('status')
    .filter({ hasText: `${person.email} can sign in now as ${person.role}` })
    .waitFor();
}
