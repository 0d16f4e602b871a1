/**
 * `imagine-bot register discord [--guild ID] [--json]`: overwrites the Discord application's
 * slash commands with the ones built from the command declarations (the Discord adapter's own
 * registration, src/adapters/discord/register.ts), in one server or globally.
 */
import type { Command } from "commander";
import { loadConfig } from "../../core/config.js";
import { CHAT_COMMANDS } from "../chat/commands.js";
import { registerDiscordCommands } from "../discord/register.js";
import { discordSettings } from "../discord/settings.js";

export function registerDiscordCommand(program: Command): Command {
  // `register` may already exist (slack.ts adds `register slack`): add to it.
  const register =
    program.commands.find((command) => command.name() === "register") ??
    program.command("register").description("Register the chat commands with a platform");
  return register
    .command("discord")
    .description(
      "Overwrite the Discord application's slash commands (DISCORD_TOKEN, DISCORD_APPLICATION_ID):\n" +
        "in one server with --guild (or DISCORD_GUILD_ID), else globally.",
    )
    .option("--guild <id>", "register in this server only (changes show at once)")
    .option("--json", 'print {"scope","guildId","names"}')
    .action(async (flags: { guild?: string; json?: boolean }) => {
      const settings = discordSettings(process.env);
      const { config } = loadConfig();
      const result = await registerDiscordCommands(settings, CHAT_COMMANDS, {
        ...(flags.guild ? { guildId: flags.guild } : {}),
        maxSubjectLength: config.prompt.maxSubjectLength,
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        const where = result.scope === "guild" ? `in server ${result.guildId}` : "globally";
        process.stdout.write(
          `Registered ${result.names.length} commands ${where}: ${result.names.join(", ")}\n`,
        );
      }
    });
}
