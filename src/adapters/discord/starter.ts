/**
 * The Discord adapter as an entry in `imagine-bot serve`'s list of chat adapters.
 */
import type { AdapterStarter } from "../shared/services.js";
import { startDiscordAdapter } from "./adapter.js";
import { discordConfigured, discordSettings } from "./settings.js";

export const discordStarter: AdapterStarter = {
  name: "discord",
  credentials: "DISCORD_TOKEN",
  configured: discordConfigured,
  start: (services, env) => startDiscordAdapter(discordSettings(env), services),
};
