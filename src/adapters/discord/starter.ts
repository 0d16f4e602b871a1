/**
 * The Discord adapter as an entry in `imagine-bot serve`'s list of chat adapters.
 */
import type { AdapterStarter } from "../chat/services.js";
import { describeStartFailure } from "../chat/startFailure.js";
import { startDiscordAdapter } from "./client.js";
import { discordConfigured, discordSettings } from "./settings.js";

export const discordStarter: AdapterStarter = {
  name: "discord",
  credentials: "DISCORD_TOKEN",
  secretVariables: ["DISCORD_TOKEN"],
  configured: discordConfigured,
  start: (services, env) => {
    const settings = discordSettings(env);
    // DISCORD_CHANNELS wins over the configured allow-list (discord.channels).
    const configured = services.config.discord.channels;
    if (settings.channels === undefined && configured.length > 0) settings.channels = configured;
    return startDiscordAdapter(settings, services).catch((error: unknown) => {
      throw describeStartFailure(error, {
        platform: "Discord",
        url: settings.apiUrl,
        tokenVariable: "DISCORD_TOKEN",
        urlVariable: "DISCORD_API_URL",
        // discord.js says TokenInvalid for a 401 at login.
        tokenRejected: (e) =>
          (e as { code?: unknown }).code === "TokenInvalid" ||
          (e as { status?: unknown }).status === 401,
      });
    });
  },
};
