/**
 * Discord settings, from the environment only (the token is a secret):
 *   DISCORD_TOKEN           the bot token (enables the Discord adapter in `imagine-bot serve`)
 *   DISCORD_APPLICATION_ID  the application id (needed by `imagine-bot register discord`)
 *   DISCORD_GUILD_ID        register commands in this server only (optional; instant, for testing)
 *   DISCORD_API_URL         the REST base, https://discord.com/api by default (tests: a fake)
 *   DISCORD_CHANNELS        comma-separated channel ids where commands are allowed (default: all)
 *   DISCORD_SHARDS          gateway shards: "auto" (Discord's recommended count) or a number N;
 *                           unset: one connection (discord.js's default, fine below ~2,500 guilds)
 *   DISCORD_SHARD_IDS       with DISCORD_SHARDS=N: the shards this process runs ("0,1", "2-3");
 *                           default all N. Several processes split the shards between them.
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
  /** Gateway sharding (DISCORD_SHARDS, DISCORD_SHARD_IDS); undefined: one connection. */
  shards?: DiscordShards;
}

/** "auto": as many shards as Discord recommends, all in this process; else `ids` out of `count`. */
export type DiscordShards = "auto" | { count: number; ids: readonly number[] };

/** Discord's cap on shards per bot is far below this; a larger number is a typo. */
const MAX_SHARDS = 4096;

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
  const shards = discordShards(env);
  if (shards !== undefined) settings.shards = shards;
  try {
    new URL(settings.apiUrl);
  } catch {
    throw new UserError("CONFIG_INVALID", `DISCORD_API_URL is not a URL: ${settings.apiUrl}`);
  }
  return settings;
}

/** DISCORD_SHARDS and DISCORD_SHARD_IDS, checked; undefined when neither is set. */
export function discordShards(env: NodeJS.ProcessEnv): DiscordShards | undefined {
  const shards = env.DISCORD_SHARDS?.trim();
  const ids = env.DISCORD_SHARD_IDS?.trim();
  if (!shards) {
    if (ids) {
      throw new UserError(
        "CONFIG_INVALID",
        "DISCORD_SHARD_IDS needs DISCORD_SHARDS=<total number of shards>, so that every process splits the same count",
      );
    }
    return undefined;
  }
  if (shards.toLowerCase() === "auto") {
    if (ids) {
      throw new UserError(
        "CONFIG_INVALID",
        "DISCORD_SHARD_IDS needs a fixed DISCORD_SHARDS=<number>, not auto: processes splitting the shards must agree on the total",
      );
    }
    return "auto";
  }
  const count = Number(shards);
  if (!/^\d+$/.test(shards) || count < 1 || count > MAX_SHARDS) {
    throw new UserError(
      "CONFIG_INVALID",
      `DISCORD_SHARDS must be "auto" or a whole number of shards from 1 to ${MAX_SHARDS}, got "${shards}"`,
    );
  }
  if (!ids) return { count, ids: Array.from({ length: count }, (_, i) => i) };
  const chosen = new Set<number>();
  for (const part of ids.split(",").map((p) => p.trim())) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    const first = Number(match?.[1]);
    const last = Number(match?.[2] ?? match?.[1]);
    if (!match || first > last || last >= count) {
      throw new UserError(
        "CONFIG_INVALID",
        `DISCORD_SHARD_IDS must list shard ids from 0 to ${count - 1} (DISCORD_SHARDS=${count}) as "0,2" or "0-3", got "${ids}"`,
      );
    }
    for (let id = first; id <= last; id++) chosen.add(id);
  }
  return { count, ids: [...chosen].sort((a, b) => a - b) };
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
