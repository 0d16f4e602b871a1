/**
 * Slack's side of the command declarations (src/commands, offered through CHAT_COMMANDS): one
 * slash command, `/imagine`, whose first word picks a subcommand.
 *
 *   /imagine a lighthouse                → imagine (the default: the whole text is the subject)
 *   /imagine prompt a lighthouse         → prompt
 *   /imagine imagine prompt engineering  → imagine, for a subject that starts with a command's name
 *   /imagine a lighthouse seed:42 count:2 → options as name:value words, named as in chat
 *                                          (snake_case of the declaration's key: max_new_tokens)
 *   /imagine help                        → usage, generated from the declarations
 *
 * Why subcommands of one slash command rather than a slash command each: a workspace's slash
 * commands are global (two apps cannot both own /prompt or /stats), each must be created in the
 * app's settings and reinstalled, and Slack offers no typed options; one command keeps the
 * namespace small and lets a new declaration appear without touching the app's configuration.
 */
import { UserError } from "../../core/errors.js";
import {
  type AnyCommand,
  CHAT_COMMANDS,
  type ChatOption,
  chatOptions,
  parseChatOptions,
} from "../chat/commands.js";

export const SLASH_COMMAND = "/imagine";

export type ParsedSlash =
  | { kind: "help" }
  | { kind: "usage"; message: string }
  /** `values`: the options by chat name, for the chat flow; `input`: them validated. */
  | { kind: "run"; command: AnyCommand; input: unknown; values: Record<string, unknown> };

/** The option filled by the free text: the first required string option (the subject). */
function positionalOf(options: readonly ChatOption[]): ChatOption | undefined {
  return (
    options.find((o) => o.required && o.type === "string") ??
    options.find((o) => o.type === "string")
  );
}

/** Parses the text after `/imagine`; commands[0] is the default subcommand. */
export function parseSlashText(
  text: string,
  commands: readonly AnyCommand[] = CHAT_COMMANDS,
): ParsedSlash {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const first = words[0]?.toLowerCase();
  if (first === undefined || first === "help") return { kind: "help" };
  let command = commands.find((candidate) => candidate.name === first);
  if (command === undefined) {
    command = commands[0];
    if (command === undefined) return { kind: "usage", message: "No commands are offered here." };
  } else {
    words.shift();
  }
  const options = chatOptions(command);
  const positional = positionalOf(options);
  const values: Record<string, unknown> = {};
  const rest: string[] = [];
  for (const word of words) {
    const match = /^([a-z][a-z0-9_]*):(.+)$/i.exec(word);
    const option = match ? options.find((o) => o.name === match[1]?.toLowerCase()) : undefined;
    if (!match || option === undefined) {
      rest.push(word);
      continue;
    }
    const raw = match[2] as string;
    if (option.type === "integer" || option.type === "number") {
      const value = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(value)) {
        return { kind: "usage", message: `${option.name} must be a number, got "${raw}".` };
      }
      values[option.name] = value;
    } else if (option.type === "boolean") {
      values[option.name] = /^(1|true|yes|on)$/i.test(raw);
    } else {
      values[option.name] = raw;
    }
  }
  if (positional !== undefined && rest.length > 0) {
    // The free text fills the positional option, unless it was also named (`action:start`).
    if (values[positional.name] !== undefined) {
      return {
        kind: "usage",
        message: `${positional.name} is given twice: as ${positional.name}:… and as the words "${rest.join(" ")}".`,
      };
    }
    values[positional.name] = rest.join(" ");
  }
  if (positional?.required && values[positional.name] === undefined) {
    const prefix = command === commands[0] ? "" : `${command.name} `;
    return {
      kind: "usage",
      message: `Say what to draw, e.g. \`${SLASH_COMMAND} ${prefix}a lighthouse\` (\`${SLASH_COMMAND} help\` lists everything).`,
    };
  }
  try {
    return { kind: "run", command, input: parseChatOptions(command, values), values };
  } catch (error) {
    if (error instanceof UserError) return { kind: "usage", message: error.message };
    throw error;
  }
}

/** Usage for `/imagine help`, generated from the declarations. */
export function helpText(commands: readonly AnyCommand[] = CHAT_COMMANDS): string {
  const lines = [`*${SLASH_COMMAND}* — what it can do:`];
  for (const [index, command] of commands.entries()) {
    const options = chatOptions(command);
    const positional = positionalOf(options);
    const named = options.filter((o) => o !== positional);
    const usage = [
      SLASH_COMMAND,
      index === 0 ? `[${command.name}]` : command.name,
      ...(positional ? [`<${positional.name}>`] : []),
      ...named.map((o) => `[${o.name}:…]`),
    ].join(" ");
    lines.push(`• \`${usage}\` — ${command.description}`);
    for (const option of named) lines.push(`    ◦ \`${option.name}\`: ${option.description}`);
  }
  lines.push(`• \`${SLASH_COMMAND} help\` — this list`);
  return lines.join("\n");
}

/** The hint shown in Slack's command picker. */
export function usageHint(commands: readonly AnyCommand[] = CHAT_COMMANDS): string {
  return `<subject> | ${[...commands.slice(1).map((c) => c.name), "help"].join(" | ")} …`;
}

/** Bot scopes, each for one reason. channels:history is not needed: reaction events carry the item. */
export const SLACK_BOT_SCOPES = [
  "commands", // the /imagine slash command
  "chat:write", // post, update and (after a refusal) delete the bot's own message
  "chat:write.public", // post in public channels the bot was not invited to
  "files:write", // files.getUploadURLExternal / files.completeUploadExternal for the image
  "reactions:read", // reaction_added / reaction_removed events
  "reactions:write", // the eight voting reactions
  "users:read", // users.info: admin commands are for workspace admins and owners
] as const;

export const SLACK_BOT_EVENTS = ["reaction_added", "reaction_removed"] as const;

export interface ManifestOptions {
  /** Socket Mode: no public URL needed. */
  socketMode: boolean;
  /** HTTP mode: the public base URL of the bot (https://bot.example.com); /slack/events is appended. */
  requestUrl?: string;
  name?: string;
}

/** A Slack app manifest (Slack accepts it as JSON) generated from the declarations. */
export function slackManifest(
  options: ManifestOptions,
  commands: readonly AnyCommand[] = CHAT_COMMANDS,
): Record<string, unknown> {
  const name = options.name ?? "imagine-bot";
  const eventsUrl =
    options.socketMode || options.requestUrl === undefined
      ? undefined
      : `${options.requestUrl.replace(/\/+$/, "")}/slack/events`;
  return {
    _metadata: { major_version: 1, minor_version: 1 },
    display_information: {
      name,
      description:
        "/imagine <subject>: GPT-2 writes the prompt, Stable Diffusion draws it, reactions rate it.",
    },
    features: {
      bot_user: { display_name: name, always_online: true },
      slash_commands: [
        {
          command: SLASH_COMMAND,
          description: (commands[0]?.description ?? "Make an image").slice(0, 100),
          usage_hint: usageHint(commands).slice(0, 100),
          should_escape: false,
          ...(eventsUrl !== undefined ? { url: eventsUrl } : {}),
        },
      ],
    },
    oauth_config: { scopes: { bot: [...SLACK_BOT_SCOPES] } },
    settings: {
      event_subscriptions: {
        ...(eventsUrl !== undefined ? { request_url: eventsUrl } : {}),
        bot_events: [...SLACK_BOT_EVENTS],
      },
      interactivity: { is_enabled: false },
      org_deploy_enabled: false,
      socket_mode_enabled: options.socketMode,
      token_rotation_enabled: false,
    },
  };
}
