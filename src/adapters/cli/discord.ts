/**
 * `imagine-bot register discord [--guild ID] [--json]`: overwrites the Discord application's
 * slash commands with the ones built from the command declarations (the Discord adapter's own
 * registration, src/adapters/discord/register.ts), in one server or globally.
 * `--invite` prints the link that adds the bot to a server instead (src/adapters/discord/invite.ts).
 */
import type { Command } from "commander";
import { loadConfig } from "../../core/config.js";
import { UserError } from "../../core/errors.js";
import { CHAT_COMMANDS } from "../chat/commands.js";
import { discordInviteUrl } from "../discord/invite.js";
import { registerDiscordCommands } from "../discord/register.js";
import { discordSettings, snowflake } from "../discord/settings.js";

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
    .option(
      "--invite",
      "only print the link that adds the bot to a server (needs DISCORD_APPLICATION_ID only)",
    )
    .option("--json", 'print {"scope","guildId","names"} (with --invite: {"url"})')
    .action(async (flags: { guild?: string; invite?: boolean; json?: boolean }) => {
      if (flags.invite) {
        const url = discordInviteUrl(applicationId(process.env), flags.guild);
        process.stdout.write(flags.json ? `${JSON.stringify({ url })}\n` : `${url}\n`);
        return;
      }
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

/** The application id alone: the invite link needs no token. */
function applicationId(env: NodeJS.ProcessEnv): string {
  const id = env.DISCORD_APPLICATION_ID?.trim();
  if (!id) {
    throw new UserError(
      "CONFIG_INVALID",
      "DISCORD_APPLICATION_ID is not set: copy the Application ID from the Discord developer portal (General Information).",
    );
  }
  return snowflake("DISCORD_APPLICATION_ID", id);
}
