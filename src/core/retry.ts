/**
 * Retries and timeouts for remote calls (Hugging Face text generation, image backends).
 *
 * Backoff is exponential with full jitter (AWS architecture blog, "Exponential Backoff and
 * Jitter"): the n-th retry waits a uniform random time in [0, min(maxDelayMs, baseDelayMs·2ⁿ)),
 * so many bot instances hitting the same rate limit do not retry in lockstep. A server's own
 * hint (Retry-After, Hugging Face's estimated_time while a model loads) takes precedence.
 */

import { BotError } from "./errors.js";

/** Waits ms milliseconds; rejects early when the signal aborts. Injected in tests. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface RetryEvent {
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  /** Extra attempts after the first; 0 means try once. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Aborts the wait between attempts and stops further attempts (throws BotError "ABORTED"). */
  signal?: AbortSignal;
  /** Defaults to isRetryableError. */
  isRetryable?: (error: unknown) => boolean;
  /** Called before each wait, e.g. to log the failure that is being retried. */
  onRetry?: (event: RetryEvent) => void;
  sleep?: Sleep;
  /** Uniform source in [0, 1) for the jitter; seed it in tests. Defaults to Math.random. */
  random?: () => number;
}

/**
 * A failed remote call, classified once where the response is understood (status, headers,
 * body) so that withRetry need not know any particular API. Its message names the model or
 * endpoint and the HTTP status, never a credential.
 */
export class RemoteCallError extends BotError {
  /** HTTP status, when the server answered. */
  readonly status: number | undefined;
  readonly retryable: boolean;
  /** From a Retry-After header: the server asks us not to call again sooner. */
  readonly retryAfterMs: number | undefined;
  /** From Hugging Face's estimated_time while a model loads: a hint, not a demand. */
  readonly estimatedReadyMs: number | undefined;

  constructor(
    message: string,
    details: {
      status?: number;
      retryable: boolean;
      retryAfterMs?: number;
      estimatedReadyMs?: number;
      cause?: unknown;
    },
  ) {
    super("REMOTE_FAILED", message, { cause: details.cause });
    this.status = details.status;
    this.retryable = details.retryable;
    this.retryAfterMs = details.retryAfterMs;
    this.estimatedReadyMs = details.estimatedReadyMs;
  }
}

/** Runs fn until it succeeds, a non-retryable error occurs, retries run out, or signal aborts. */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const isRetryable = options.isRetryable ?? isRetryableError;
  const sleep = options.sleep ?? sleepFor;
  const random = options.random ?? Math.random;
  const { signal } = options;

  for (let attempt = 0; ; attempt++) {
    throwIfAborted(signal);
    try {
      return await fn(attempt);
    } catch (error) {
      // An error caused by our own abort is not a remote failure worth retrying or reporting.
      throwIfAborted(signal);
      if (attempt >= options.retries || !isRetryable(error)) throw error;
      const delayMs = retryDelayMs(error, attempt, options, random);
      // The server asked for a longer pause than we may wait: retrying sooner would be refused.
      if (delayMs === undefined) throw error;
      options.onRetry?.({ attempt: attempt + 1, delayMs, error });
      // Raced against the signal so that an injected sleep that ignores it still aborts promptly.
      await untilAborted(sleep(delayMs, signal), signal);
    }
  }
}

/**
 * The wait before retry number attempt+1: the larger of the jittered backoff and the server's
 * hint. Retry-After beyond maxDelayMs gives up (undefined); estimated_time is only capped.
 */
export function retryDelayMs(
  error: unknown,
  attempt: number,
  options: Pick<RetryOptions, "baseDelayMs" | "maxDelayMs">,
  random: () => number = Math.random,
): number | undefined {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** attempt);
  const backoff = Math.floor(random() * ceiling);
  if (error instanceof RemoteCallError) {
    if (error.retryAfterMs !== undefined) {
      if (error.retryAfterMs > options.maxDelayMs) return undefined;
      return Math.max(backoff, error.retryAfterMs);
    }
    if (error.estimatedReadyMs !== undefined) {
      return Math.min(options.maxDelayMs, Math.max(backoff, error.estimatedReadyMs));
    }
  }
  return backoff;
}

/**
 * Runs fn with a signal that aborts after ms or when parentSignal aborts, and settles promptly
 * either way even if fn ignores its signal. A timeout throws a retryable RemoteCallError whose
 * message starts with `what`; a parent abort throws BotError "ABORTED".
 */
export async function withTimeout<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  ms: number,
  parentSignal?: AbortSignal,
  what = "Remote call",
): Promise<T> {
  throwIfAborted(parentSignal);
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onParentAbort: (() => void) | undefined;
  const interrupted = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const timeout = new RemoteCallError(`${what} timed out after ${ms} ms`, { retryable: true });
      controller.abort(timeout);
      reject(timeout);
    }, ms);
    if (parentSignal) {
      onParentAbort = () => {
        controller.abort(parentSignal.reason);
        reject(abortedError(parentSignal));
      };
      parentSignal.addEventListener("abort", onParentAbort, { once: true });
    }
  });
  try {
    return await Promise.race([fn(controller.signal), interrupted]);
  } finally {
    clearTimeout(timer);
    if (onParentAbort) parentSignal?.removeEventListener("abort", onParentAbort);
  }
}

const RETRYABLE_NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** 429 (rate limited), 408 and every 5xx, including Hugging Face's 503 while a model loads. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Classifies an error from any HTTP client: a RemoteCallError says itself; otherwise a status
 * found on the error (status, statusCode, response.status, httpResponse.status), a transient
 * network code anywhere in the cause chain, "fetch failed", or Hugging Face's "is currently
 * loading" message. Aborts are never retryable.
 */
export function isRetryableError(error: unknown): boolean {
  if (error instanceof RemoteCallError) return error.retryable;
  if (error instanceof BotError) return false;
  if (isAbortError(error)) return false;
  const status = httpStatusOf(error);
  if (status !== undefined) return isRetryableStatus(status);
  if (networkErrorCode(error) !== undefined) return true;
  const message = error instanceof Error ? error.message : "";
  return /fetch failed|is currently loading/i.test(message);
}

/** The first transient network code (ECONNRESET, ECONNREFUSED, …) in the cause chain. */
export function networkErrorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && RETRYABLE_NETWORK_CODES.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Codes that mean the host could not be reached at all (not only the transient ones). */
const UNREACHABLE_CODES = new Set([
  ...RETRYABLE_NETWORK_CODES,
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/**
 * Why a host could not be reached, for a message an operator can act on: a socket error code in
 * the cause chain (following an HTTP client's `original` error too, as Slack's Web API client
 * wraps it), or, when fetch failed without one (undici's "bad port"), the innermost reason.
 * Undefined when the error is not a failure to connect.
 */
export function unreachableReason(error: unknown): string | undefined {
  let fetchFailed = false;
  let innermost: string | undefined;
  for (let current = error, depth = 0; current && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && UNREACHABLE_CODES.has(code)) return code;
    const message = current instanceof Error ? current.message : "";
    if (message.includes("fetch failed")) fetchFailed = true;
    if (message !== "") innermost = message;
    current =
      (current as { cause?: unknown }).cause ?? (current as { original?: unknown }).original;
  }
  return fetchFailed ? innermost : undefined;
}

function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const candidate = error as {
    status?: unknown;
    statusCode?: unknown;
    response?: { status?: unknown };
    httpResponse?: { status?: unknown };
  };
  for (const value of [
    candidate.status,
    candidate.statusCode,
    candidate.response?.status,
    candidate.httpResponse?.status,
  ]) {
    if (typeof value === "number" && value >= 100) return value;
  }
  return undefined;
}

/**
 * Parses a Retry-After header (RFC 9110 §10.2.3): delay-seconds or an HTTP date. Returns
 * milliseconds from now (0 for a date in the past), or undefined when absent or malformed.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // All three HTTP date forms start with a day name; Date.parse alone accepts "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(trimmed)) return undefined;
  const dateMs = Date.parse(trimmed);
  if (Number.isNaN(dateMs)) return undefined;
  return Math.max(0, dateMs - nowMs);
}

/** Hugging Face answers 503 `{"error": "Model x is currently loading", "estimated_time": 20.5}`. */
export function loadingEstimateMs(body: unknown): number | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const seconds = (body as { estimated_time?: unknown }).estimated_time;
  return typeof seconds === "number" && seconds >= 0 ? Math.ceil(seconds * 1000) : undefined;
}

/** The default Sleep: a timer that is cleared when the signal aborts. */
export const sleepFor: Sleep = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

export function abortedError(signal: AbortSignal): BotError {
  return new BotError("ABORTED", "The request was cancelled before the remote call finished", {
    cause: signal.reason,
  });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError(signal);
}

function isAbortError(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  throwIfAborted(signal);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortedError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}

/** A thrown fetch error: transient network failures are retryable, aborts pass through. */
export function networkFailure(error: unknown, what: string): unknown {
  if (error instanceof BotError) return error;
  const name = (error as { name?: unknown } | null)?.name;
  if (name === "AbortError" || name === "TimeoutError") return error;
  const code = networkErrorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if (code !== undefined || /fetch failed|terminated|socket/i.test(message)) {
    return new RemoteCallError(`${what} could not be reached (${code ?? message})`, {
      retryable: true,
      cause: error,
    });
  }
  return new RemoteCallError(`${what} failed: ${message}`, { retryable: false, cause: error });
}

/** The error text a server put in its JSON body ({error}, {detail}, {message}), shortened. */
export function serverMessage(body: unknown): string | undefined {
  const record = asRecord(body);
  const nested = asRecord(record?.error);
  const candidates = [record?.error, record?.detail, record?.message, nested?.message];
  const text = candidates.find((value): value is string => typeof value === "string");
  const trimmed = text?.trim();
  if (!trimmed) return undefined;
  return trimmed.length > 200 ? `${trimmed.slice(0, 200)}…` : trimmed;
}

export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}
