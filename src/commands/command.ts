/**
 * A command is platform-neutral: typed options in (a zod schema that adapters turn into slash
 * command options or CLI flags), a plain result out that each adapter renders its own way.
 */
import type { z } from "zod";
import type { Config } from "../core/config.js";
import type { PromptArms } from "../core/prompt/arms.js";
import type { Logger } from "../core/types.js";

export interface CommandContext {
  config: Config;
  arms: PromptArms;
  logger: Logger;
}

export interface Command<Options extends z.ZodType, Result> {
  name: string;
  description: string;
  options: Options;
  execute(context: CommandContext, options: z.infer<Options>): Promise<Result>;
}
