/**
 * The Slack adapter as an entry in `imagine-bot serve`'s list of chat adapters.
 */
import type { AdapterStarter } from "../shared/services.js";
import { startSlackAdapter } from "./app.js";
import { readSlackSettings, slackConfigured } from "./settings.js";

export const slackStarter: AdapterStarter = {
  name: "slack",
  credentials: "SLACK_BOT_TOKEN",
  configured: slackConfigured,
  start: (services, env) => startSlackAdapter(readSlackSettings(env), services),
};
