/** The Slack adapter's public surface. */

export type { CommandReport, ReactionReport } from "../chat/flow.js";
export { helpText, parseSlashText, SLASH_COMMAND, slackManifest } from "./commands.js";
export { slackMessageRef } from "./reactions.js";
export { SlackAdapter, type SlackAdapterOptions, startSlackAdapter } from "./receiver.js";
export { readSlackSettings, type SlackSettings, slackConfigured } from "./settings.js";
export { slackStarter } from "./starter.js";
