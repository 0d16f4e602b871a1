/**
 * The Discord adapter as an entry in `imagine-bot serve`'s list of chat adapters. discord.js is
 * loaded only when the adapter starts, so other commands do not pay for it.
 */
import type { AdapterStarter } from "../shared/services.js";
import { discordConfigured, discordSettings } from "./settings.js";

export const discordStarter: AdapterStarter = {
  name: "discord",
  credentials: "DISCORD_TOKEN",
  configured: discordConfigured,
  start: async (services, env) => {
    const { startDiscordAdapter } = await import("./adapter.js");
    return startDiscordAdapter(discordSettings(env), services);
  },
};
