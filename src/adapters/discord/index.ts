/** The Discord adapter's public surface. */

export type { CommandReport, ReactionReport } from "../chat/flow.js";
export { DiscordAdapter, startDiscordAdapter } from "./client.js";
export { discordCommandDefinitions } from "./commands.js";
export { caption } from "./messages.js";
export { discordMessageRef } from "./reactions.js";
export { registerDiscordCommands } from "./register.js";
export { type DiscordSettings, discordConfigured, discordSettings } from "./settings.js";
export { discordStarter } from "./starter.js";
