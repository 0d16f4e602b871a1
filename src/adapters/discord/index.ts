/** The Discord adapter's public surface. */

export {
  type CommandReport,
  DiscordAdapter,
  discordMessageRef,
  type ReactionReport,
  startDiscordAdapter,
} from "./adapter.js";
export { discordCommandDefinitions } from "./commands.js";
export { registerDiscordCommands } from "./register.js";
export { type DiscordSettings, discordConfigured, discordSettings } from "./settings.js";
export { discordStarter } from "./starter.js";
