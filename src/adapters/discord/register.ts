/**
 * `imagine-bot register discord [--guild ID]`: overwrites the application's slash commands with
 * the ones built from the command declarations (bulk PUT), in one server when a guild is given
 * (instant) or globally.
 */
import { REST, Routes } from "discord.js";
import { UserError } from "../../core/errors.js";
import type { AnyCommand } from "../chat/commands.js";
import { discordCommandDefinitions } from "./commands.js";
import type { DiscordSettings } from "./settings.js";

export interface RegisterResult {
  scope: "guild" | "global";
  guildId?: string;
  /** The command names Discord now holds. */
  names: string[];
}

export async function registerDiscordCommands(
  settings: DiscordSettings,
  commands: readonly AnyCommand[],
  options: { guildId?: string; maxSubjectLength?: number } = {},
): Promise<RegisterResult> {
  const applicationId = settings.applicationId;
  if (!applicationId) {
    throw new UserError(
      "CONFIG_INVALID",
      "DISCORD_APPLICATION_ID is not set: set it to the application id (Developer Portal → General Information).",
    );
  }
  const guildId = options.guildId ?? settings.guildId;
  const body = discordCommandDefinitions(commands, { maxSubjectLength: options.maxSubjectLength });
  const rest = new REST({ api: settings.apiUrl }).setToken(settings.token);
  const route = guildId
    ? Routes.applicationGuildCommands(applicationId, guildId)
    : Routes.applicationCommands(applicationId);
  const registered = (await rest.put(route, { body })) as { name: string }[];
  return {
    scope: guildId ? "guild" : "global",
    ...(guildId ? { guildId } : {}),
    names: registered.map((command) => command.name),
  };
}
