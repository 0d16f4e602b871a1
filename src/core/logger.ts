/**
 * Structured JSON logs (pino) on stderr, so stdout stays free for a command's output.
 * Secrets are removed twice: by field name (token, authorization, …) wherever they appear, and
 * by value, so a token pasted into an error message is masked too.
 */
import { pino } from "pino";
import type { Logger } from "./types.js";

export const REDACTED = "[redacted]";

const SECRET_FIELDS = [
  "token",
  "hfToken",
  "apiKey",
  "password",
  "secret",
  "authorization",
  "signingSecret",
];

export interface LoggerOptions {
  level: string;
  /** Secret values to mask wherever they appear in a log line. */
  secrets?: readonly string[];
  /** Where lines go; stderr by default. */
  destination?: NodeJS.WritableStream;
  /** Append the lines to this file instead (folders created; written synchronously, so a line
   * logged just before the process exits is not lost). */
  file?: string;
}

export function createLogger(options: LoggerOptions): Logger {
  const secrets = (options.secrets ?? []).filter((value) => value.length >= 4);
  const paths = SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]);
  paths.push('headers["authorization"]', '*.headers["authorization"]');
  return pino(
    {
      level: options.level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths, censor: REDACTED },
      hooks: {
        streamWrite: secrets.length === 0 ? undefined : (line) => maskValues(line, secrets),
      },
    },
    options.destination ??
      (options.file !== undefined
        ? pino.destination({ dest: options.file, mkdir: true, sync: true })
        : pino.destination(2)),
  ) as unknown as Logger;
}

function maskValues(line: string, secrets: readonly string[]): string {
  let out = line;
  for (const secret of secrets) out = out.split(secret).join(REDACTED);
  return out;
}
