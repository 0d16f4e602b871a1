/**
 * What the image backends share: the retry-and-timeout loop around one render attempt, server
 * URLs (with user:password@ turned into a Basic header, since fetch refuses credentials in a
 * URL, and kept out of every message), and HTTP failures classified once into RemoteCallError
 * (status, Retry-After, Hugging Face-style estimated_time) for withRetry.
 */

import { BotError, ConfigError, UserError } from "../errors.js";
import {
  isRetryableStatus,
  loadingEstimateMs,
  networkFailure,
  parseRetryAfter,
  RemoteCallError,
  type Sleep,
  serverMessage,
  withRetry,
  withTimeout,
} from "../retry.js";
import type { ImageBackend, ImageRequest, Logger, RenderedImage } from "../types.js";

/** How every backend calls out: limits from config.image, and what tests inject. */
export interface BackendRuntimeOptions {
  /** Per attempt: ComfyUI's covers queueing, waiting for the job and downloading the image. */
  timeoutMs: number;
  /** Extra attempts after the first for retryable failures. */
  retries: number;
  /** First backoff ceiling; doubles per retry (full jitter). Default 1 s. */
  retryBaseDelayMs?: number;
  /** Longest wait between attempts; a Retry-After beyond it gives up. Default 60 s. */
  retryMaxDelayMs?: number;
  logger?: Logger;
  fetch?: typeof fetch;
  sleep?: Sleep;
  random?: () => number;
}

const DEFAULT_RETRY_BASE_DELAY_MS = 1_000;
const DEFAULT_RETRY_MAX_DELAY_MS = 60_000;

/**
 * Runs `attempt` under the request's signal and the backend's lifetime, each try bounded by
 * timeoutMs, retried with backoff while the failure is retryable. A final 429/503 that said when
 * to come back (a Retry-After beyond retryMaxDelayMs, or retries used up) is a BackendBusyError.
 */
export async function runRender<T>(
  options: BackendRuntimeOptions,
  label: string,
  lifetime: AbortSignal,
  request: ImageRequest,
  attempt: (signal: AbortSignal) => Promise<T>,
  logger: Logger | undefined,
): Promise<T> {
  if (lifetime.aborted) throw new BotError("GENERATION_FAILED", `${label}: the backend is closed`);
  const signal = request.signal ? AbortSignal.any([lifetime, request.signal]) : lifetime;
  try {
    return await withRetry(() => withTimeout(attempt, options.timeoutMs, signal, label), {
      retries: options.retries,
      baseDelayMs: options.retryBaseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS,
      maxDelayMs: options.retryMaxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS,
      signal,
      sleep: options.sleep,
      random: options.random,
      onRetry: ({ attempt: retry, delayMs, error }) =>
        logger?.warn(
          {
            attempt: retry,
            delayMs,
            status: error instanceof RemoteCallError ? error.status : undefined,
            err: error,
          },
          "image render failed; retrying",
        ),
    });
  } catch (error) {
    throw busyError(error) ?? error;
  }
}

/**
 * The image server is overloaded (429 or 503 with a Retry-After, or Hugging Face's estimated
 * load time) and retrying within our limits did not help. A UserError, so chat adapters show the
 * person its message ("try again in about N minutes") instead of a bare failure; the server's
 * answer stays in `cause` for the log.
 */
export class BackendBusyError extends UserError {
  /** How long the server asked us to wait. */
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number, options?: { cause?: unknown }) {
    const minutes = Math.max(1, Math.ceil(retryAfterMs / 60_000));
    super(
      "BACKEND_BUSY",
      `The image server is busy; try again in about ${minutes} minute${minutes === 1 ? "" : "s"}.`,
      options,
    );
    this.retryAfterMs = retryAfterMs;
  }
}

/** The busy error for a final 429/503 that said when to come back; undefined for anything else. */
export function busyError(error: unknown): BackendBusyError | undefined {
  if (!(error instanceof RemoteCallError)) return undefined;
  if (error.status !== 429 && error.status !== 503) return undefined;
  const waitMs = error.retryAfterMs ?? error.estimatedReadyMs;
  return waitMs === undefined ? undefined : new BackendBusyError(waitMs, { cause: error });
}

/**
 * An ImageBackend around one render attempt: every render goes through runRender (timeout,
 * retries, the caller's signal), and close() aborts whatever is still running.
 */
export function remoteBackend(
  name: string,
  what: string,
  options: BackendRuntimeOptions,
  label: string,
  logger: Logger | undefined,
  attempt: (request: ImageRequest, signal: AbortSignal) => Promise<RenderedImage>,
): ImageBackend {
  const lifetime = new AbortController();
  return {
    name,
    render: (request) =>
      runRender(
        options,
        label,
        lifetime.signal,
        request,
        (signal) => attempt(request, signal),
        logger,
      ),
    async close() {
      lifetime.abort(new BotError("ABORTED", `The ${what} backend was closed`));
    },
  };
}

export function validateRuntime(options: BackendRuntimeOptions, what: string): void {
  if (!(options.timeoutMs > 0)) throw new ConfigError(`${what}: timeoutMs must be positive`);
  if (!Number.isInteger(options.retries) || options.retries < 0) {
    throw new ConfigError(`${what}: retries must be an integer ≥ 0`);
  }
}

/** A server reached over HTTP: base URL without credentials, and the headers that carry them. */
export interface ServerTarget {
  /** Origin plus any path prefix, no trailing slash, no credentials. */
  base: string;
  headers: Record<string, string>;
  /** For logs and errors: "AUTOMATIC1111 at http://host:7860". */
  label: string;
}

/** Parses a server URL from config; `variable` is named in the error for a bad one. */
export function serverTarget(
  url: string | undefined,
  name: string,
  variable: string,
): ServerTarget {
  if (!url?.trim()) {
    throw new ConfigError(
      `${name} needs its server URL: set ${variable} (e.g. http://127.0.0.1:7860)`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new ConfigError(`${variable} is not a valid URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new ConfigError(`${variable} must be an http(s) URL, got ${parsed.protocol}`);
  }
  const headers: Record<string, string> = {};
  if (parsed.username || parsed.password) {
    const user = decodeURIComponent(parsed.username);
    const password = decodeURIComponent(parsed.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  }
  const base = `${parsed.origin}${parsed.pathname.replace(/\/+$/, "")}`;
  return { base, headers, label: `${name} at ${base}` };
}

/**
 * One HTTP call to a server. A network failure is a retryable RemoteCallError; a non-2xx answer
 * is classified by status (408, 429, 5xx retryable) with Retry-After and estimated_time kept.
 */
export async function send(
  fetchImpl: typeof fetch,
  target: ServerTarget,
  path: string,
  init: { method: "GET" | "POST"; json?: unknown; signal: AbortSignal },
  what: string,
): Promise<Response> {
  let response: Response;
  try {
    response = await fetchImpl(`${target.base}${path}`, {
      method: init.method,
      headers: {
        ...target.headers,
        ...(init.json === undefined ? {} : { "content-type": "application/json" }),
      },
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
      signal: init.signal,
    });
  } catch (error) {
    throw networkFailure(error, what);
  }
  if (!response.ok) throw await httpFailure(response, what);
  return response;
}

/** Reads a JSON body; anything else is a non-retryable failure naming what came instead. */
export async function readJson(response: Response, what: string): Promise<unknown> {
  const text = await readText(response, what);
  try {
    return JSON.parse(text);
  } catch {
    const type = response.headers.get("content-type") ?? "no content-type";
    throw new RemoteCallError(
      `${what} returned a body that is not JSON (${type}, ${text.length} characters)`,
      { status: response.status, retryable: false },
    );
  }
}

export async function readBytes(response: Response, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw networkFailure(error, what);
  }
}

async function readText(response: Response, what: string): Promise<string> {
  try {
    return await response.text();
  } catch (error) {
    throw networkFailure(error, what);
  }
}

async function httpFailure(response: Response, what: string): Promise<RemoteCallError> {
  const text = await response.text().catch(() => "");
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Plain text or HTML: the message says only the status.
  }
  const detail = serverMessage(body);
  return new RemoteCallError(
    `${what} failed with HTTP ${response.status}${detail ? `: ${detail}` : ""}`,
    {
      status: response.status,
      retryable: isRetryableStatus(response.status),
      retryAfterMs: parseRetryAfter(response.headers.get("retry-after")),
      estimatedReadyMs: response.status === 503 ? loadingEstimateMs(body) : undefined,
    },
  );
}
