/** What every CLI command starts from: validated configuration and a logger that masks secrets. */
import { type LoadedConfig, loadConfig } from "../../core/config.js";
import { createLogger } from "../../core/logger.js";
import type { Logger } from "../../core/types.js";

/**
 * Loads the configuration and creates the logger, masking every secret (HF_TOKEN and any
 * platform credentials in `extraSecrets`) wherever it would appear in a log line.
 */
export function openConfigured(
  env: NodeJS.ProcessEnv = process.env,
  extraSecrets: readonly string[] = [],
): LoadedConfig & { logger: Logger } {
  const loaded = loadConfig(env);
  const logger = createLogger({
    level: loaded.config.log.level,
    secrets: [
      ...Object.values(loaded.secrets).filter((v): v is string => typeof v === "string"),
      ...extraSecrets,
    ],
  });
  return { ...loaded, logger };
}
