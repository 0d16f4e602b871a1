/** The Slack adapter's public surface. */

export {
  SlackAdapter,
  type SlackAdapterOptions,
  type SlackCommandReport,
  type SlackReactionReport,
  slackMessageRef,
  startSlackAdapter,
} from "./app.js";
export { helpText, parseSlashText, SLASH_COMMAND, slackManifest } from "./commands.js";
export { readSlackSettings, type SlackSettings, slackConfigured } from "./settings.js";
export { slackStarter } from "./starter.js";
