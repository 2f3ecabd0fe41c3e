import type { ConsoleUser } from '../../api/console-auth.ts';

declare global {
  namespace App {
    interface Locals {
      /** The signed-in person, with their roles and the session's CSRF token; null when nobody is. */
      user: ConsoleUser | null;
    }
  }
}

export {};
