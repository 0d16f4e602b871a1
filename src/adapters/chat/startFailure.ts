/**
 * Why a chat platform did not start, in words an operator can act on: a network failure is
 * "cannot reach Discord at …" (PLATFORM_UNREACHABLE), a rejected token a configuration error
 * naming the variable; anything else is passed on as it is.
 */
import { BotError, ConfigError } from "../../core/errors.js";

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

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
  const code = networkCode(error);
  if (code !== undefined) {
    return new BotError(
      "PLATFORM_UNREACHABLE",
      `cannot reach ${context.platform} at ${context.url} (${code}): check the network, or ${context.urlVariable} if you set it`,
      { cause: error },
    );
  }
  return error;
}

/**
 * The network error somewhere in an error's cause chain: a socket error code, or — when fetch
 * failed for a reason without one (undici's "bad port") — the innermost reason.
 */
function networkCode(error: unknown): string | undefined {
  let fetchFailed = false;
  let innermost: string | undefined;
  for (let current = error, depth = 0; current && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
    const message = current instanceof Error ? current.message : "";
    if (message.includes("fetch failed")) fetchFailed = true;
    if (message !== "") innermost = message;
    const next: unknown =
      (current as { cause?: unknown }).cause ?? (current as { original?: unknown }).original;
    current = next;
  }
  return fetchFailed ? innermost : undefined;
}
