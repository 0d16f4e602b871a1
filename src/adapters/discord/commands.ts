/**
 * Slash command definitions built from the command declarations: names, descriptions and
 * options from each command's zod schema (src/adapters/chat/commands.ts). Admin commands are
 * registered for Manage Server only, and checked again when they run.
 */
import {
  ApplicationCommandOptionType,
  ApplicationCommandType,
  InteractionContextType,
  PermissionFlagsBits,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
} from "discord.js";
import { type AnyCommand, type ChatOptionSettings, chatOptions } from "../chat/commands.js";

const OPTION_TYPES = {
  string: ApplicationCommandOptionType.String,
  integer: ApplicationCommandOptionType.Integer,
  number: ApplicationCommandOptionType.Number,
  boolean: ApplicationCommandOptionType.Boolean,
} as const;

/** Discord's cap on command and option descriptions. */
const MAX_DESCRIPTION = 100;

function description(text: string): string {
  return text.length <= MAX_DESCRIPTION ? text : `${text.slice(0, MAX_DESCRIPTION - 1)}…`;
}

export function discordCommandDefinition(
  command: AnyCommand,
  settings: ChatOptionSettings = {},
): RESTPostAPIChatInputApplicationCommandsJSONBody {
  const options = chatOptions(command, settings).map((option) => {
    const base = {
      name: option.name,
      description: description(option.description),
      required: option.required,
    };
    switch (option.type) {
      case "string":
        return {
          ...base,
          type: OPTION_TYPES.string,
          ...(option.minLength !== undefined ? { min_length: option.minLength } : {}),
          ...(option.maxLength !== undefined ? { max_length: option.maxLength } : {}),
          ...(option.choices
            ? {
                choices: option.choices.map((value) => ({
                  name: String(value),
                  value: String(value),
                })),
              }
            : {}),
        };
      case "integer":
      case "number":
        return {
          ...base,
          type: OPTION_TYPES[option.type],
          ...(option.minValue !== undefined ? { min_value: option.minValue } : {}),
          ...(option.maxValue !== undefined ? { max_value: option.maxValue } : {}),
        };
      default:
        return { ...base, type: OPTION_TYPES.boolean };
    }
  });
  return {
    type: ApplicationCommandType.ChatInput,
    name: command.name,
    description: description(command.description),
    options,
    contexts: [InteractionContextType.Guild],
    ...(command.adminOnly
      ? { default_member_permissions: PermissionFlagsBits.ManageGuild.toString() }
      : {}),
  } as RESTPostAPIChatInputApplicationCommandsJSONBody;
}

export function discordCommandDefinitions(
  commands: readonly AnyCommand[],
  settings: ChatOptionSettings = {},
): RESTPostAPIChatInputApplicationCommandsJSONBody[] {
  return commands.map((command) => discordCommandDefinition(command, settings));
}
