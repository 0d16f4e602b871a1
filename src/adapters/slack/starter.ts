/**
 * The Slack adapter as an entry in `imagine-bot serve`'s list of chat adapters.
 */
import type { AdapterStarter } from "../chat/services.js";
import { startSlackAdapter } from "./receiver.js";
import { readSlackSettings, SLACK_SECRET_VARIABLES, slackConfigured } from "./settings.js";

export const slackStarter: AdapterStarter = {
  name: "slack",
  credentials: "SLACK_BOT_TOKEN",
  secretVariables: SLACK_SECRET_VARIABLES,
  configured: slackConfigured,
  start: (services, env) => {
    const settings = readSlackSettings(env);
    // SLACK_CHANNELS wins over the configured allow-list (slack.channels).
    const configured = services.config.slack.channels;
    if (settings.channels === undefined && configured.length > 0) settings.channels = configured;
    return startSlackAdapter(settings, services);
  },
};
