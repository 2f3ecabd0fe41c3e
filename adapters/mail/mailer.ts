import nodemailer, { type Transporter } from 'nodemailer';

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  /** `smtp` when sent through SMTP_URL; `captured` when kept in the outbox only (embedded default). */
  readonly transport: 'smtp' | 'captured';
  send(mail: Mail, messageId: string): Promise<void>;
  close(): void;
}

/**
 * The mail transport: nodemailer over SMTP when `smtpUrl` is set (e.g.
 * `smtp://user:pass@mail.example.org:587`), else a capturing transport — the embedded default keeps
 * every mail in the outbox table, where the console shows it.
 *
 * @example const mailer = createMailer(process.env.SMTP_URL, 'LabRelay <labrelay@localhost>');
 */
export function createMailer(smtpUrl: string | undefined, from: string): Mailer {
  if (!smtpUrl) {
    return { transport: 'captured', send: async () => {}, close: () => {} };
  }
  const transporter: Transporter = nodemailer.createTransport(smtpUrl);
  return {
    transport: 'smtp',
    async send(mail, messageId) {
      // The outbox id as Message-ID: a receiving server can tell a resend from a new mail.
      await transporter.sendMail({ from, ...mail, messageId: `<${messageId}@labrelay>` });
    },
    close: () => transporter.close(),
  };
}
