import { setLogger } from "@huggingface/inference";
import type { Logger } from "./types.js";

/**
 * @huggingface/inference prints to the console (stdout) on every model-id request ("Defaulting
 * to 'auto'…", "Auto selected provider: …"). Its logger is process-wide; point it at ours, its
 * chatter at debug level, so stdout stays free for command output (`--json`). Used by the remote
 * prompt generator and the Hugging Face image backend.
 */
export function routeHuggingFaceLogs(logger: Logger): void {
  const library = logger.child({ component: "@huggingface/inference" });
  const text = (message: string, args: unknown[]) => [message, ...args.map(String)].join(" ");
  setLogger({
    debug: (message, ...args) => library.debug({}, text(message, args)),
    log: (message, ...args) => library.debug({}, text(message, args)),
    info: (message, ...args) => library.debug({}, text(message, args)),
    warn: (message, ...args) => library.warn({}, text(message, args)),
    error: (message, ...args) => library.error({}, text(message, args)),
  });
}
