/**
 * The Slack adapter as an entry in `imagine-bot serve`'s list of chat adapters. Bolt is loaded
 * only when the adapter starts, so other commands do not pay for it.
 */
import type { AdapterStarter } from "../shared/services.js";
import { readSlackSettings, slackConfigured } from "./settings.js";

export const slackStarter: AdapterStarter = {
  name: "slack",
  credentials: "SLACK_BOT_TOKEN",
  configured: slackConfigured,
  start: async (services, env) => {
    const { startSlackAdapter } = await import("./app.js");
    return startSlackAdapter(readSlackSettings(env), services);
  },
};
