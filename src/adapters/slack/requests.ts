/**
 * Checks on signed HTTP requests that Bolt does not make. Bolt's HTTP receiver verifies the
 * signature and rejects timestamps more than 5 minutes OLD, but accepts any timestamp in the
 * future, and runs an exact replay of a signed request again. Here:
 *
 *   - a request whose X-Slack-Request-Timestamp is more than 5 minutes ahead of now gets 401
 *     before Bolt reads it (the timestamp is signed, so nobody can move it without failing
 *     Bolt's signature check);
 *   - every verified request carries a key of its exact signed form (signature, timestamp and
 *     body) into Bolt's context, so that a slash command can be claimed once in the vote store.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { HTTPReceiver } from "@slack/bolt";

/** Slack's and Bolt's window for a request's timestamp, either side of now. */
export const SIGNED_REQUEST_WINDOW_MS = 5 * 60_000;

/** Bolt context property holding the key of the signed request (see signedRequestKey). */
export const SIGNED_REQUEST_PROPERTY = "signedRequest";

/**
 * How long an accepted signed request is remembered: its timestamp stays acceptable for up to
 * the window on either side of now, so a replay can come at most twice the window later.
 */
export const SIGNED_REQUEST_MEMORY_MS = 2 * SIGNED_REQUEST_WINDOW_MS;

/** Whether a timestamp header (seconds) is further than the window from `nowMs`, either way. */
export function timestampOutsideWindow(header: string | undefined, nowMs: number): boolean {
  if (header === undefined || !/^\d+$/.test(header)) return false; // Bolt rejects these itself.
  return Math.abs(Number(header) * 1000 - nowMs) > SIGNED_REQUEST_WINDOW_MS;
}

/** The key of a request's exact signed form: the same for a replay, different otherwise. */
export function signedRequestKey(request: IncomingMessage & { rawBody: Buffer }): string {
  return createHash("sha256")
    .update(headerOf(request, "x-slack-signature") ?? "")
    .update("\n")
    .update(headerOf(request, "x-slack-request-timestamp") ?? "")
    .update("\n")
    .update(request.rawBody)
    .digest("hex");
}

/** Puts the timestamp check in front of the receiver's own request handling. */
export function rejectFutureTimestamps(
  receiver: HTTPReceiver,
  onRejected: (timestamp: string | undefined) => void,
): void {
  const boltListener = receiver.requestListener;
  receiver.requestListener = (req: IncomingMessage, res: ServerResponse) => {
    const timestamp = headerOf(req, "x-slack-request-timestamp");
    if (timestampOutsideWindow(timestamp, Date.now())) {
      onRejected(timestamp);
      // Drain the body so that the client sees the answer rather than a reset connection.
      req.resume();
      res.writeHead(401).end();
      return;
    }
    boltListener(req, res);
  };
}

function headerOf(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
