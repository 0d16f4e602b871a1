import {
  InferenceClientHubApiError,
  InferenceClientInputError,
  InferenceClientProviderApiError,
  InferenceClientProviderOutputError,
  setLogger,
} from "@huggingface/inference";
import {
  isRetryableStatus,
  loadingEstimateMs,
  networkFailure,
  parseRetryAfter,
  RemoteCallError,
  serverMessage,
} from "./retry.js";
import type { Logger } from "./types.js";

/** Glue for @huggingface/inference shared by the remote prompt generator and the image backend. */

/**
 * @huggingface/inference prints to the console (stdout) on every model-id request ("Defaulting
 * to 'auto'…", "Auto selected provider: …"). Its logger is process-wide; point it at ours, its
 * chatter at debug level, so stdout stays free for command output (`--json`). Used by the remote
 * prompt generator and the Hugging Face image backend.
 */
export function routeHuggingFaceLogs(logger: Logger): void {
  const library = logger.child({ component: "@huggingface/inference" });
  const text = (message: string, args: unknown[]) => [message, ...args.map(String)].join(" ");
  setLogger({
    debug: (message, ...args) => library.debug({}, text(message, args)),
    log: (message, ...args) => library.debug({}, text(message, args)),
    info: (message, ...args) => library.debug({}, text(message, args)),
    warn: (message, ...args) => library.warn({}, text(message, args)),
    error: (message, ...args) => library.error({}, text(message, args)),
  });
}

/**
 * One error for a failed @huggingface/inference call, whose message names the model or endpoint
 * and the HTTP status, never the token. The library's HTTP errors carry the request headers; v4
 * redacts the token there, but they are left out as the cause rather than trusting every version.
 * `noOutput` words the case where the server answered 2xx without what was asked for.
 */
export function describeHuggingFaceFailure(
  error: unknown,
  label: string,
  lastResponse: Response | undefined,
  noOutput: string,
): unknown {
  if (
    error instanceof InferenceClientProviderApiError ||
    error instanceof InferenceClientHubApiError
  ) {
    const { status, body } = error.httpResponse;
    const what = error instanceof InferenceClientHubApiError ? `${label} (Hub lookup)` : label;
    const detail = serverMessage(body) ?? (typeof body === "string" ? body.slice(0, 200) : "");
    return new RemoteCallError(`${what} failed with HTTP ${status}${detail ? `: ${detail}` : ""}`, {
      status,
      retryable: isRetryableStatus(status),
      retryAfterMs: parseRetryAfter(lastResponse?.headers.get("retry-after")),
      estimatedReadyMs: status === 503 ? loadingEstimateMs(body) : undefined,
    });
  }
  if (error instanceof InferenceClientProviderOutputError) {
    return new RemoteCallError(`${label} ${noOutput}: ${error.message}`, {
      status: lastResponse?.status,
      retryable: false,
    });
  }
  if (error instanceof InferenceClientInputError) {
    return new RemoteCallError(`${label} rejected the request: ${error.message}`, {
      retryable: false,
    });
  }
  return networkFailure(error, label);
}
