/** Stable error codes shared by the CLI, the daemon protocol and the SDK. */
export type ErrorCode =
  | 'internal'
  | 'usage'
  | 'not_found'
  | 'denied'
  | 'pending'
  | 'unavailable'
  | 'locked'
  | 'expired'
  | 'too_large'
  | 'bad_request'
  | 'corrupt'
  | 'conflict';

/** Base class of every error Entraclaw raises on purpose; `code` is stable, `hint` says what to do. */
export class EntraclawError extends Error {
  override name = 'EntraclawError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The item does not exist in the store. */
export class NotFoundError extends EntraclawError {
  override name = 'NotFoundError';
  constructor(message: string, hint?: string) {
    super('not_found', message, hint);
  }
}

/** The store cannot be reached or used on this machine right now. */
export class UnavailableError extends EntraclawError {
  override name = 'UnavailableError';
  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super('unavailable', message, hint, options);
  }
}

/** The store exists but is locked (or no passphrase was supplied). */
export class LockedError extends EntraclawError {
  override name = 'LockedError';
  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super('locked', message, hint, options);
  }
}

/** A token or grant is past its expiry. */
export class ExpiredError extends EntraclawError {
  override name = 'ExpiredError';
  constructor(message: string, hint?: string) {
    super('expired', message, hint);
  }
}

/** A value or frame exceeds a documented limit. */
export class TooLargeError extends EntraclawError {
  override name = 'TooLargeError';
  constructor(message: string, hint?: string) {
    super('too_large', message, hint);
  }
}

/** The caller used the command or API wrongly (bad flag, malformed input, invalid config). */
export class UsageError extends EntraclawError {
  override name = 'UsageError';
  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super('usage', message, hint, options);
  }
}

/** A prompt at the terminal was cancelled (Ctrl-D; Ctrl-C is its InterruptedError). */
export class PromptCancelledError extends UsageError {
  override name = 'PromptCancelledError';
}

/**
 * Ctrl-C at a prompt (raw mode turns the key into a byte, not a signal): the CLI reports it, then dies of
 * SIGINT as the key would have made it, so a script running the command stops there too.
 */
export class InterruptedError extends PromptCancelledError {
  override name = 'InterruptedError';
}

/** The request was refused by policy or identity checks. */
export class DeniedError extends EntraclawError {
  override name = 'DeniedError';
  constructor(message: string, hint?: string) {
    super('denied', message, hint);
  }
}

/** Stored data failed authentication or could not be parsed; nothing was returned. */
export class CorruptError extends EntraclawError {
  override name = 'CorruptError';
  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super('corrupt', message, hint, options);
  }
}

/** A request on the wire (frame, JSON or fields) is malformed. */
export class BadRequestError extends EntraclawError {
  override name = 'BadRequestError';
  constructor(message: string, hint?: string) {
    super('bad_request', message, hint);
  }
}

/** The change collides with something that already exists (a client name, an identity). */
export class ConflictError extends EntraclawError {
  override name = 'ConflictError';
  constructor(message: string, hint?: string) {
    super('conflict', message, hint);
  }
}
