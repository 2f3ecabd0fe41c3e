import { Hono, type Context } from 'hono';
import { html } from 'hono/html';
import { htmlPage } from './html-page.ts';
import { AppError } from '../errors.ts';
import type { AppEnv } from '../env.ts';
import { acknowledgeCriticalResult, describeAckLink } from '../lifecycle.ts';

/**
 * The page a provider reaches from the critical-result e-mail: what the result is about, and a
 * read-back form (value and patient identifier). Server-rendered and without JavaScript, so it works
 * in any mail client's browser; the token in the link is the only credential.
 */
export function ackPageRoutes() {
  const app = new Hono<AppEnv>();
  // The token is in the URL: keep it out of caches and out of Referer headers.
  app.use('*', async function noStore(c, next) {
    await next();
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
  });

  app.get('/:token', async (c) => {
    try {
      const link = await describeAckLink(c.get('services'), c.req.param('token'));
      if (link.acknowledged || link.used)
        return c.html(
          page(
            'Already acknowledged',
            html`<p role="status">This critical result has already been acknowledged. Thank you.</p>`,
          ),
        );
      return c.html(page('Acknowledge a critical result', form(link)));
    } catch (error) {
      return errorPage(c, error);
    }
  });

  app.post('/:token', async (c) => {
    const token = c.req.param('token');
    const body = await c.req.parseBody();
    const value = typeof body.value === 'string' ? body.value : '';
    const patientIdentifier = typeof body.patientIdentifier === 'string' ? body.patientIdentifier : '';
    try {
      if (!value.trim() || !patientIdentifier.trim())
        throw new AppError('invalid_request', 'read back both the value and the patient identifier');
      await acknowledgeCriticalResult(c.get('services'), token, { value, patientIdentifier });
      return c.html(
        page(
          'Acknowledged',
          html`<p role="status">Acknowledged. Your read-back matched and has been recorded. Thank you.</p>`,
        ),
      );
    } catch (error) {
      if (error instanceof AppError && (error.code === 'unprocessable' || error.code === 'invalid_request')) {
        const link = await describeAckLink(c.get('services'), token).catch(() => null);
        if (link)
          return c.html(
            page('Acknowledge a critical result', form(link, error.message)),
            error.status as 422,
          );
      }
      return errorPage(c, error);
    }
  });
  return app;
}

type Link = Awaited<ReturnType<typeof describeAckLink>>;

function form(link: Link, problem?: string) {
  return html`<p>
      A critical result of <strong>${link.test ?? 'a laboratory test'}</strong>, identified
      ${link.identifiedAt}, was sent to ${link.recipient}.
    </p>
    <p>Read back the value and the patient's identifier from the notification to acknowledge it.</p>
    ${problem ? html`<p role="alert" class="problem">${problem}</p>` : ''}
    <form method="post">
      <label for="value">Value as you received it</label>
      <input id="value" name="value" required autocomplete="off" autofocus />
      <label for="patientIdentifier">Patient identifier (MRN) or date of birth (YYYY-MM-DD)</label>
      <input id="patientIdentifier" name="patientIdentifier" required autocomplete="off" />
      <button type="submit">Acknowledge</button>
    </form>
    <p class="small">The link works once and expires ${link.expiresAt}.</p>`;
}

const ACK_PAGE_STYLE = `
  label { display: block; margin-top: 1rem; font-weight: 600; }
  input { width: 100%; padding: 0.5rem; font-size: 1rem; box-sizing: border-box; }
  button { margin-top: 1.5rem; padding: 0.6rem 1.2rem; font-size: 1rem; }
  .problem { color: #a00; font-weight: 600; }
  .small { color: #555; font-size: 0.9rem; }`;

function page(title: string, content: unknown) {
  return htmlPage(title, content, { style: ACK_PAGE_STYLE });
}

function errorPage(c: Context<AppEnv>, error: unknown) {
  if (!(error instanceof AppError)) throw error;
  return c.html(
    page('This link cannot be used', html`<p role="alert">${error.message}</p>`),
    error.status as 404,
  );
}
