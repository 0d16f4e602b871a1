/**
 * Why a chat platform did not start, in words an operator can act on: a network failure is
 * "cannot reach Discord at …" (PLATFORM_UNREACHABLE), a rejected token a configuration error
 * naming the variable; anything else is passed on as it is.
 */
import { BotError, ConfigError } from "../../core/errors.js";
import { unreachableReason } from "../../core/retry.js";

export interface StartFailureContext {
  /** "Discord" | "Slack". */
  platform: string;
  /** Where the platform was called (API base URL). */
  url: string;
  /** The variable holding the token, and the variable that moves the API base. */
  tokenVariable: string;
  urlVariable: string;
  /** Whether the platform said the token is not valid. */
  tokenRejected(error: unknown): boolean;
}

export function describeStartFailure(error: unknown, context: StartFailureContext): unknown {
  if (context.tokenRejected(error)) {
    return new ConfigError(
      `${context.platform} rejected ${context.tokenVariable}: set it to the bot's current token`,
      { cause: error },
    );
  }
  const code = unreachableReason(error);
  if (code !== undefined) {
    return new BotError(
      "PLATFORM_UNREACHABLE",
      `cannot reach ${context.platform} at ${context.url} (${code}): check the network, or ${context.urlVariable} if you set it`,
      { cause: error },
    );
  }
  return error;
}
