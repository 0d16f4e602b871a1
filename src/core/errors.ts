/**
 * A small error tree with stable codes. Adapters decide what to show from the class:
 * a UserError's message is safe to show to the person who asked; any other BotError is logged
 * in full and shown only as a short failure with a reference id.
 */

export type ErrorCode =
  | "CONFIG_INVALID"
  | "USAGE"
  | "SUBJECT_INVALID"
  | "MODEL_DIR_INVALID"
  | "MODEL_INCONSISTENT"
  | "TOKEN_FILE_INVALID"
  | "ARM_UNKNOWN"
  | "GENERATION_FAILED"
  | "REMOTE_FAILED"
  | "ABORTED"
  | "SUBJECT_EXPLICIT"
  | "PROMPT_EXPLICIT"
  | "QUEUE_FULL"
  | "QUEUE_USER_FULL"
  | "QUEUE_CLOSED"
  | "DEADLINE"
  | "BACKEND_BUSY";

export class BotError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An error caused by what someone typed or configured; its message is safe to show them. */
export class UserError extends BotError {}

/** Configuration that cannot work; the message names the setting and what would be valid. */
export class ConfigError extends UserError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("CONFIG_INVALID", message, options);
  }
}

export function isBotError(error: unknown): error is BotError {
  return error instanceof BotError;
}
