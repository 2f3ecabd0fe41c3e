import { html, raw } from 'hono/html';

/**
 * The frame of LabRelay's few server-rendered pages (the critical-result acknowledgement, the SMART
 * results app): plain HTML without script, readable in any mail client's browser. `style` holds
 * the page's own CSS rules (constant text written in our code, never user data).
 */
export function htmlPage(
  title: string,
  content: unknown,
  options: { maxWidth?: string; style?: string } = {},
) {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · LabRelay</title>
        <style>
          body { font: 16px/1.5 system-ui, sans-serif; max-width: ${options.maxWidth ?? '36rem'}; margin: 2rem auto; padding: 0 1rem; }
          ${raw(options.style ?? '')}
        </style>
      </head>
      <body>
        <h1>${title}</h1>
        ${content}
      </body>
    </html>`;
}
