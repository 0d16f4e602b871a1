/**
 * Discord settings, from the environment only (the token is a secret):
 *   DISCORD_TOKEN           the bot token (enables the Discord adapter in `imagine-bot serve`)
 *   DISCORD_APPLICATION_ID  the application id (needed by `imagine-bot register discord`)
 *   DISCORD_GUILD_ID        register commands in this server only (optional; instant, for testing)
 *   DISCORD_API_URL         the REST base, https://discord.com/api by default (tests: a fake)
 *   DISCORD_CHANNELS        comma-separated channel ids where commands are allowed (default: all)
 */
import { UserError } from "../../core/errors.js";

export const DEFAULT_DISCORD_API = "https://discord.com/api";

export interface DiscordSettings {
  token: string;
  applicationId?: string;
  guildId?: string;
  apiUrl: string;
  /** Channel allow-list; undefined allows every channel. */
  channels?: readonly string[];
}

export function discordConfigured(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.DISCORD_TOKEN?.trim());
}

export function discordSettings(env: NodeJS.ProcessEnv): DiscordSettings {
  const token = env.DISCORD_TOKEN?.trim();
  if (!token) {
    throw new UserError("CONFIG_INVALID", "DISCORD_TOKEN is not set: set it to the bot's token.");
  }
  const settings: DiscordSettings = {
    token,
    apiUrl: (env.DISCORD_API_URL?.trim() || DEFAULT_DISCORD_API).replace(/\/+$/, ""),
  };
  const applicationId = env.DISCORD_APPLICATION_ID?.trim();
  if (applicationId) settings.applicationId = snowflake("DISCORD_APPLICATION_ID", applicationId);
  const guildId = env.DISCORD_GUILD_ID?.trim();
  if (guildId) settings.guildId = snowflake("DISCORD_GUILD_ID", guildId);
  const channels = env.DISCORD_CHANNELS?.split(",")
    .map((id) => id.trim())
    .filter((id) => id.length > 0);
  if (channels && channels.length > 0) {
    settings.channels = channels.map((id) => snowflake("DISCORD_CHANNELS", id));
  }
  try {
    new URL(settings.apiUrl);
  } catch {
    throw new UserError("CONFIG_INVALID", `DISCORD_API_URL is not a URL: ${settings.apiUrl}`);
  }
  return settings;
}

export function snowflake(variable: string, value: string): string {
  if (!/^\d{1,20}$/.test(value)) {
    throw new UserError(
      "CONFIG_INVALID",
      `${variable} must be a Discord id (digits only), got "${value}"`,
    );
  }
  return value;
}
