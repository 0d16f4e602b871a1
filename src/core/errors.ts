/**
 * A small error tree with stable codes. Adapters decide what to show from the class:
 * a UserError's message is safe to show to the person who asked; any other BotError is logged
 * in full and shown only as a short failure with a reference id.
 *
 * Who "the person who asked" is matters: on the command line it is the operator, who may see
 * every configuration problem; in chat it is a requester, who must see neither server paths
 * nor settings. ConfigError is therefore not a UserError, and isRequesterError() leaves out the
 * UserError codes that only the operator can fix (a model directory is the CLI user's own
 * argument, but in chat it comes from the configuration).
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
  | "BACKEND_BUSY"
  | "PLATFORM_UNREACHABLE"
  /** Another chat process published this job's outcome (the render queue's delivery claim). */
  | "DELIVERED_ELSEWHERE";

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

/**
 * Configuration that cannot work; the message names the setting and what would be valid. For
 * the operator: the CLI prints it, chat shows only "failed, reference X" and logs it.
 */
export class ConfigError extends BotError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("CONFIG_INVALID", message, options);
  }
}

export function isBotError(error: unknown): error is BotError {
  return error instanceof BotError;
}

/** Problems with the server's own files and settings, whoever's request ran into them. */
const OPERATOR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "CONFIG_INVALID",
  "MODEL_DIR_INVALID",
  "MODEL_INCONSISTENT",
  "TOKEN_FILE_INVALID",
]);

/**
 * Whether a chat requester may be shown this error's message: their own mistake (a bad subject,
 * a full queue, an unknown arm they typed), not a problem of the operator's.
 */
export function isRequesterError(error: unknown): error is UserError {
  return error instanceof UserError && !OPERATOR_CODES.has(error.code);
}

/**
 * Whether the operator running a command line may be shown this error's message as it is: every
 * UserError and every configuration problem.
 */
export function isOperatorFixable(error: unknown): error is BotError {
  return error instanceof UserError || error instanceof ConfigError;
}
