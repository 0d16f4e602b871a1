/**
 * `imagine-bot register slack [--url https://bot.example.com] [--socket | --http] [--name NAME]`:
 * prints the Slack app manifest generated from the command declarations (paste it into
 * https://api.slack.com/apps → Create New App → From a manifest). Socket Mode is chosen when
 * SLACK_APP_TOKEN is set (or --socket); HTTP mode needs --url, the public base URL where
 * `imagine-bot serve` listens (SLACK_PORT), to which /slack/events is appended.
 */
import type { Command } from "commander";
import { UserError } from "../../core/errors.js";
import { slackManifest } from "../slack/commands.js";

interface RegisterSlackFlags {
  url?: string;
  socket?: boolean;
  http?: boolean;
  name?: string;
}

export function registerSlackCommand(program: Command): Command {
  // `register` may already exist (serve.ts adds `register discord`): add to it.
  const register =
    program.commands.find((command) => command.name() === "register") ??
    program.command("register").description("Register the chat commands with a platform");
  return register
    .command("slack")
    .description(
      "Print the Slack app manifest (JSON) for /imagine: slash command, bot scopes, reaction events.\n" +
        "Socket Mode when SLACK_APP_TOKEN is set or --socket; HTTP mode needs --url.",
    )
    .option(
      "--url <base>",
      "HTTP mode: the bot's public base URL (https://…); /slack/events is appended",
    )
    .option("--socket", "Socket Mode (no public URL needed)")
    .option("--http", "HTTP mode even when SLACK_APP_TOKEN is set")
    .option("--name <name>", "the app's and bot's display name", "imagine-bot")
    .action((flags: RegisterSlackFlags) => {
      const socketMode =
        flags.socket === true || (!flags.http && Boolean(process.env.SLACK_APP_TOKEN?.trim()));
      if (!socketMode && flags.url === undefined) {
        throw new UserError(
          "USAGE",
          "HTTP mode needs the bot's public URL: register slack --url https://bot.example.com (or --socket for Socket Mode).",
        );
      }
      if (flags.url !== undefined && !/^https?:\/\/[^/\s]+/.test(flags.url)) {
        throw new UserError("USAGE", `--url must be an http(s) URL, got "${flags.url}"`);
      }
      const manifest = slackManifest({
        socketMode,
        ...(flags.url !== undefined && !socketMode ? { requestUrl: flags.url } : {}),
        ...(flags.name !== undefined ? { name: flags.name } : {}),
      });
      process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
    });
}
