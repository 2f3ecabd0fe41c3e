/** Every error code the API answers with, in the contract's `{ error: { code, message, details } }`. */
export type ErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'invalid_request'
  | 'unprocessable'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  invalid_request: 400,
  unprocessable: 422,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export interface ErrorDetail {
  path?: string;
  message: string;
}

/** Marks an AppError whichever copy of this module made it (the console bundles its own copy). */
const APP_ERROR = Symbol.for('labrelay.AppError');

/** The one error type routes throw; `onError` renders it in the shape the route's format needs. */
export class AppError extends Error {
  /**
   * `instanceof AppError` holds for an AppError from any copy of this module: the console's server
   * code is bundled with its own copy, yet catches errors thrown by the host process's services.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[APP_ERROR] === true
    );
  }
  readonly [APP_ERROR] = true;
  override readonly name = 'AppError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetail[];
  /** Response headers the error carries (`Retry-After` on 429). */
  readonly headers: Record<string, string>;
  constructor(
    code: ErrorCode,
    message: string,
    details: ErrorDetail[] = [],
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.code = code;
    this.status = STATUS[code];
    this.details = details;
    this.headers = headers;
  }
}

export function errorBody(error: AppError) {
  return { error: { code: error.code, message: error.message, details: error.details } };
}
