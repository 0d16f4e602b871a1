/**
 * A command is platform-neutral: typed options in (a zod schema that adapters turn into slash
 * command options or CLI flags), a typed result out (CommandResult) that each adapter renders
 * its own way, with one case per kind so that a new kind fails to compile until every adapter
 * renders it.
 */
import type { z } from "zod";
import type { Config } from "../core/config.js";
import type { ImagineProgress, ImagineResult, Pipeline } from "../core/pipeline.js";
import type { PromptArms } from "../core/prompt/arms.js";
import type { PromptRefusal } from "../core/safety/index.js";
import type { StudyManager } from "../core/study/manager.js";
import type { WebSettings } from "../core/study/webSettings.js";
import type { GeneratedPrompt, Logger, VoteStore } from "../core/types.js";

/** Who invoked a command, and where. */
export interface Invocation {
  /** "discord" | "slack" | "cli". */
  platform: string;
  /** The person, qualified by platform: `<platform>:<id>` ("discord:123", "slack:U0…", "cli:ann"). */
  user: string;
  server?: string;
  channel?: string;
  /**
   * An opaque handle with which another process of the platform can still answer this command
   * while the platform allows it (Conversation.replyHandle; Discord: 15 minutes).
   */
  replyHandle?: string;
}

export interface CommandContext {
  config: Config;
  arms: PromptArms;
  logger: Logger;
  /** The imagine pipeline, where the adapter has an image backend (commands that render). */
  pipeline?: Pipeline;
  /** Who asked; commands that record or rate-limit by person need it. */
  invocation?: Invocation;
  /** Progress of a long-running command (imagine), for "queued, position 2" messages. */
  onProgress?: (event: ImagineProgress) => void;
  /** The vote store (stats, export, study results). */
  votes?: VoteStore;
  /** Web survey links (study invite), where IMAGINE_WEB_SECRET is set. */
  web?: WebSettings;
  /** Studies: blind arm assignment, plans, results after close (study, stats, export). */
  studies?: StudyManager;
}

/** Images made by the pipeline (imagine): published with their voting reactions. */
export type ImagesResult = ImagineResult & { kind: "images" };

/** Prompts written without rendering them (prompt). */
export interface PromptsResult {
  kind: "prompts";
  subject: string;
  arm: string;
  seed: number;
  /** The prompts that passed the explicit filter (a blocked one is resampled first). */
  prompts: GeneratedPrompt[];
  /** Prompts still blocked after every resample (index counts from 1). */
  refused: PromptRefusal[];
}

/** A report (stats, study, export): preformatted text, the same as data, and attachments. */
export interface ReportResult {
  kind: "report";
  /** Monospace text (a table, a summary); shown in a code block in chat. */
  text: string;
  /** The same as JSON-able data. */
  data: unknown;
  /** Attachments: the chart PNG, an export file. Names never contain an arm. */
  files: ReportFile[];
  /** Shown only to the person who asked (a rater's web link), never in the channel. */
  private?: boolean;
}

export interface ReportFile {
  name: string;
  contentType: string;
  content: Buffer;
}

/** Every result a command returns; adapters switch on `kind`. */
export type CommandResult = ImagesResult | PromptsResult | ReportResult;

/** Fails to compile when a switch over CommandResult["kind"] misses a case. */
export function unhandledResult(result: never): never {
  throw new Error(
    `unhandled command result ${JSON.stringify((result as { kind?: unknown }).kind)}`,
  );
}

export interface Command<Options extends z.ZodType, Result extends CommandResult = CommandResult> {
  name: string;
  description: string;
  options: Options;
  /**
   * Admin commands (study, export…): chat adapters register them for people who may manage the
   * server (Discord: Manage Server) and check that permission again when they run.
   */
  adminOnly?: boolean;
  execute(context: CommandContext, options: z.infer<Options>): Promise<Result>;
}
