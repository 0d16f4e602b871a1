/**
 * A command is platform-neutral: typed options in (a zod schema that adapters turn into slash
 * command options or CLI flags), a plain result out that each adapter renders its own way.
 */
import type { z } from "zod";
import type { Config } from "../core/config.js";
import type { ImagineProgress, Pipeline } from "../core/pipeline.js";
import type { PromptArms } from "../core/prompt/arms.js";
import type { StudyManager } from "../core/study/manager.js";
import type { Logger, VoteStore } from "../core/types.js";

/** Who invoked a command, and where. */
export interface Invocation {
  /** "discord" | "slack" | "cli". */
  platform: string;
  /** The platform's user id. */
  user: string;
  server?: string;
  channel?: string;
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
  /** Studies: blind arm assignment, plans, results after close (study, stats, export). */
  studies?: StudyManager;
}

export interface Command<Options extends z.ZodType, Result> {
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
