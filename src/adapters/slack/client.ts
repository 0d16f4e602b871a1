/**
 * The Slack Web API client's settings and Bolt's logging, shared by the receiver and the token
 * probe: Bolt and the client log through the core logger, with bounded timeouts and retries.
 */
import { type Logger as BoltLogger, LogLevel } from "@slack/bolt";
import type { Logger } from "../../core/types.js";
import { slackErrorCode } from "./reactions.js";
import type { SlackSettings } from "./settings.js";

export interface SlackClientOptions {
  /** Web API request timeout (default 15 s) and retries (default 2). */
  apiTimeoutMs?: number;
  apiRetries?: number;
}

/** Bolt and the Web API client log through the core logger. */
export function boltLogger(logger: Logger): BoltLogger {
  let level = LogLevel.INFO;
  const child = logger.child({ component: "bolt" });
  const line = (msg: unknown[]) =>
    msg
      .map((m) => (m instanceof Error ? m.message : typeof m === "string" ? m : safeStringify(m)))
      .join(" ");
  return {
    debug: (...msg: unknown[]) => child.debug({}, line(msg)),
    info: (...msg: unknown[]) => child.info({}, line(msg)),
    warn: (...msg: unknown[]) => child.warn({}, line(msg)),
    error: (...msg: unknown[]) => child.error({}, line(msg)),
    setLevel: (next: LogLevel) => {
      level = next;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** What to log of a failed Web API call: its message and Slack error code. */
export function errorInfo(error: unknown): object {
  if (error instanceof Error) {
    const code = slackErrorCode(error);
    return { message: error.message, ...(code ? { slack: code } : {}) };
  }
  return { message: String(error) };
}

export function slackClientOptions(
  settings: SlackSettings,
  options: SlackClientOptions,
  logger: BoltLogger,
) {
  return {
    slackApiUrl: settings.apiUrl,
    timeout: options.apiTimeoutMs ?? 15_000,
    retryConfig: { retries: options.apiRetries ?? 2, factor: 2, minTimeout: 500, maxTimeout: 4000 },
    logger,
  };
}
