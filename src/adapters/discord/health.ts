/**
 * Whether Discord accepts DISCORD_TOKEN: one authenticated GET /users/@me, the cheapest call a
 * bot token can make (for `imagine-bot doctor`).
 */
import { unreachableReason } from "../../core/retry.js";
import type { DiscordSettings } from "./settings.js";

export async function checkDiscordToken(
  settings: Pick<DiscordSettings, "token" | "apiUrl">,
  options: { timeoutMs?: number } = {},
): Promise<string> {
  const url = `${settings.apiUrl}/v10/users/@me`;
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { authorization: `Bot ${settings.token}` },
      signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
    });
  } catch (error) {
    const why =
      unreachableReason(error) ?? (error instanceof Error ? error.message : String(error));
    throw new Error(`cannot reach Discord at ${settings.apiUrl} (${why})`);
  }
  if (response.status === 401) {
    throw new Error("Discord rejected DISCORD_TOKEN (401): reset the token on the Bot page");
  }
  if (!response.ok) throw new Error(`Discord answered HTTP ${response.status} to ${url}`);
  const user = (await response.json()) as { username?: string; id?: string };
  return `bot ${user.username ?? "?"} (${user.id ?? "?"})`;
}
