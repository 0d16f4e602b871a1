/**
 * Whether Slack accepts SLACK_BOT_TOKEN: one auth.test, Slack's own "is this token good" call
 * (for `imagine-bot doctor`).
 */
import { unreachableReason } from "../../core/retry.js";
import type { SlackSettings } from "./settings.js";

export async function checkSlackToken(
  settings: Pick<SlackSettings, "botToken" | "apiUrl">,
  options: { timeoutMs?: number } = {},
): Promise<string> {
  let response: Response;
  try {
    response = await fetch(`${settings.apiUrl}auth.test`, {
      method: "POST",
      headers: { authorization: `Bearer ${settings.botToken}` },
      signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
    });
  } catch (error) {
    const why =
      unreachableReason(error) ?? (error instanceof Error ? error.message : String(error));
    throw new Error(`cannot reach Slack at ${settings.apiUrl} (${why})`);
  }
  const body = (await response.json().catch(() => ({}))) as {
    ok?: boolean;
    error?: string;
    user?: string;
    team?: string;
  };
  if (!body.ok) {
    throw new Error(
      `Slack rejected SLACK_BOT_TOKEN (${body.error ?? `HTTP ${response.status}`}): copy the Bot User OAuth Token again`,
    );
  }
  return `bot ${body.user ?? "?"} in ${body.team ?? "?"}`;
}
