/**
 * A command is platform-neutral: typed options in (a zod schema that adapters turn into slash
 * command options or CLI flags), a plain result out that each adapter renders its own way.
 */
import type { z } from "zod";
import type { Config } from "../core/config.js";
import type { ImagineProgress, Pipeline } from "../core/pipeline.js";
import type { PromptArms } from "../core/prompt/arms.js";
import type { Logger } from "../core/types.js";

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
}

export interface Command<Options extends z.ZodType, Result> {
  name: string;
  description: string;
  options: Options;
  execute(context: CommandContext, options: z.infer<Options>): Promise<Result>;
}
