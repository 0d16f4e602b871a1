/**
 * The platform-neutral commands that chat adapters offer, and their options described once from
 * each command's zod schema, so that Discord's slash options (and Slack's argument parsing) come
 * from the declarations instead of being written per command.
 */
import { z } from "zod";
import type { Command, CommandResult } from "../../commands/command.js";
import { exportCommand } from "../../commands/export.js";
import { imagineCommand } from "../../commands/imagine.js";
import { promptCommand } from "../../commands/prompt.js";
import { statsCommand } from "../../commands/stats.js";
import { studyCommand } from "../../commands/study.js";
import { UserError } from "../../core/errors.js";

/** Any command, whatever its options and result. */
export type AnyCommand = Command<z.ZodType, CommandResult>;

/** Every command a chat adapter registers; stats, study and export are admin-only. */
export const CHAT_COMMANDS: readonly AnyCommand[] = [
  imagineCommand,
  promptCommand,
  statsCommand,
  studyCommand,
  exportCommand,
];

/**
 * Options that stay on the command line: `modelDir` reads any folder on the server, so it is a
 * developer option and never offered in chat.
 */
export const CLI_ONLY_OPTIONS: ReadonlySet<string> = new Set(["modelDir"]);

/** One option as chat platforms see it. */
export interface ChatOption {
  /** The key in the command's zod schema ("maxNewTokens"). */
  key: string;
  /** The name shown in chat: lowercase snake_case ("max_new_tokens"). */
  name: string;
  description: string;
  type: "string" | "integer" | "number" | "boolean";
  required: boolean;
  minValue?: number;
  maxValue?: number;
  minLength?: number;
  maxLength?: number;
  choices?: readonly (string | number)[];
}

export interface ChatOptionSettings {
  /** The cap on a `subject` option's length (config.prompt.maxSubjectLength). */
  maxSubjectLength?: number;
}

interface JsonSchemaProperty {
  type?: string;
  description?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  enum?: (string | number)[];
}

/** The chat options of a command, required ones first (Discord insists on that order). */
export function chatOptions(command: AnyCommand, settings: ChatOptionSettings = {}): ChatOption[] {
  const schema = z.toJSONSchema(command.options, { io: "input", unrepresentable: "any" }) as {
    properties?: Record<string, JsonSchemaProperty>;
    required?: string[];
  };
  const required = new Set(schema.required ?? []);
  const options: ChatOption[] = [];
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    if (CLI_ONLY_OPTIONS.has(key)) continue;
    const type = optionType(property);
    if (type === undefined) {
      throw new Error(`command ${command.name}: option ${key} has a type chat cannot offer`);
    }
    const option: ChatOption = {
      key,
      name: snakeCase(key),
      description: property.description ?? key,
      type,
      required: required.has(key),
    };
    if (property.minimum !== undefined) option.minValue = property.minimum;
    if (property.maximum !== undefined) option.maxValue = property.maximum;
    if (property.minLength !== undefined) option.minLength = property.minLength;
    if (property.maxLength !== undefined) option.maxLength = property.maxLength;
    if (key === "subject" && settings.maxSubjectLength !== undefined) {
      option.maxLength = Math.min(option.maxLength ?? Infinity, settings.maxSubjectLength);
    }
    if (property.enum) option.choices = property.enum;
    options.push(option);
  }
  return [...options.filter((o) => o.required), ...options.filter((o) => !o.required)];
}

function optionType(property: JsonSchemaProperty): ChatOption["type"] | undefined {
  if (property.enum?.every((value) => typeof value === "string")) return "string";
  switch (property.type) {
    case "string":
    case "integer":
    case "number":
    case "boolean":
      return property.type;
    default:
      return undefined;
  }
}

/** "maxNewTokens" → "max_new_tokens". */
export function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

/**
 * Turns the values a platform delivered (by chat name) into the command's options, validated by
 * its zod schema. A wrong value is a UserError whose message names the option.
 */
export function parseChatOptions(
  command: AnyCommand,
  values: Readonly<Record<string, unknown>>,
): unknown {
  const byName = new Map(chatOptions(command).map((option) => [option.name, option.key]));
  const input: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(values)) {
    const key = byName.get(name);
    if (key !== undefined && value !== undefined && value !== null) input[key] = value;
  }
  const parsed = command.options.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) =>
        `${issue.path.map((p) => snakeCase(String(p))).join(".") || "options"}: ${issue.message}`,
    );
    throw new UserError("USAGE", `That didn't work: ${problems.join("; ")}.`);
  }
  return parsed.data;
}
