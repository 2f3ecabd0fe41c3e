declare global {
  namespace App {
    interface Locals {
      /** Set when the request carries a valid console session. */
      admin: boolean;
    }
  }
}

export {};
