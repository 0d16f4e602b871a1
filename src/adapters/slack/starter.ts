/**
 * The Slack adapter as an entry in `imagine-bot serve`'s list of chat adapters.
 */
import type { AdapterStarter } from "../chat/services.js";
import { describeStartFailure } from "../chat/startFailure.js";
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
    return startSlackAdapter(settings, services).catch((error: unknown) => {
      throw describeStartFailure(error, {
        platform: "Slack",
        url: settings.apiUrl,
        tokenVariable: "SLACK_BOT_TOKEN",
        urlVariable: "SLACK_API_URL",
        // The Web API client's platform error for a bad token (auth.test at start).
        tokenRejected: (e) => {
          const code = (e as { data?: { error?: unknown } }).data?.error;
          return code === "invalid_auth" || code === "not_authed" || code === "account_inactive";
        },
      });
    });
  },
};
