/**
 * Slack settings, read from the environment only: the bot token, the signing secret and the
 * app-level token are secrets and never go into a config file.
 *
 * | Variable | Setting |
 * |---|---|
 * | SLACK_BOT_TOKEN | the bot token (xoxb-…), required |
 * | SLACK_SIGNING_SECRET | verifies request signatures; required in HTTP mode |
 * | SLACK_APP_TOKEN | app-level token (xapp-…); when set, the bot connects with Socket Mode |
 * | SLACK_PORT | HTTP mode's port (default 3000) |
 * | SLACK_API_URL | the Web API base (default https://slack.com/api/), for tests and proxies |
 * | SLACK_CHANNELS | comma-separated channel ids where commands are answered (default: all; wins over slack.channels) |
 */
import { ConfigError } from "../../core/errors.js";

export const DEFAULT_SLACK_API_URL = "https://slack.com/api/";
export const DEFAULT_SLACK_PORT = 3000;

export interface SlackSettings {
  botToken: string;
  /** Required in HTTP mode; unused with Socket Mode. */
  signingSecret?: string;
  /** Socket Mode when present. */
  appToken?: string;
  port: number;
  /** Ends with "/" (the Web API client appends method names to it). */
  apiUrl: string;
  /** Channel allow-list; undefined allows every channel. */
  channels?: readonly string[];
}

/** A Slack conversation id that can hold the bot's messages: public (C…) or private (G…). */
export const SLACK_CHANNEL_ID = /^[CG][A-Z0-9]{6,}$/;

/** True when the environment asks for the Slack adapter (serve starts it then). */
export function slackConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.SLACK_BOT_TOKEN?.trim());
}

/** Reads and checks the Slack settings; a ConfigError names the variable to set or fix. */
export function readSlackSettings(env: NodeJS.ProcessEnv = process.env): SlackSettings {
  const botToken = env.SLACK_BOT_TOKEN?.trim();
  if (!botToken) {
    throw new ConfigError(
      "SLACK_BOT_TOKEN is not set. Set it to the app's Bot User OAuth Token (xoxb-…) from the Slack app's OAuth & Permissions page.",
    );
  }
  const appToken = env.SLACK_APP_TOKEN?.trim() || undefined;
  if (appToken !== undefined && !appToken.startsWith("xapp-")) {
    throw new ConfigError(
      "SLACK_APP_TOKEN must be an app-level token (xapp-…) with the connections:write scope, or unset for HTTP mode.",
    );
  }
  const signingSecret = env.SLACK_SIGNING_SECRET?.trim() || undefined;
  if (appToken === undefined && signingSecret === undefined) {
    throw new ConfigError(
      "SLACK_SIGNING_SECRET is not set. HTTP mode verifies every request with it (Basic Information → Signing Secret); or set SLACK_APP_TOKEN to use Socket Mode instead.",
    );
  }
  const portText = env.SLACK_PORT?.trim();
  const port = portText ? Number(portText) : DEFAULT_SLACK_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new ConfigError(`SLACK_PORT must be a port number from 0 to 65535, got "${portText}"`);
  }
  let apiUrl = env.SLACK_API_URL?.trim() || DEFAULT_SLACK_API_URL;
  try {
    const parsed = new URL(apiUrl);
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new Error("protocol");
  } catch {
    throw new ConfigError(
      `SLACK_API_URL must be an http(s) URL such as ${DEFAULT_SLACK_API_URL}, got "${apiUrl}"`,
    );
  }
  if (!apiUrl.endsWith("/")) apiUrl += "/";
  const channels = env.SLACK_CHANNELS?.split(",")
    .map((id) => id.trim())
    .filter((id) => id.length > 0);
  for (const id of channels ?? []) {
    if (!SLACK_CHANNEL_ID.test(id)) {
      throw new ConfigError(
        `SLACK_CHANNELS must be comma-separated Slack channel ids (C… or G…), got "${id}"`,
      );
    }
  }
  return {
    ...(channels !== undefined && channels.length > 0 ? { channels } : {}),
    botToken,
    ...(signingSecret !== undefined ? { signingSecret } : {}),
    ...(appToken !== undefined ? { appToken } : {}),
    port,
    apiUrl,
  };
}

/** The variables holding Slack's secrets, masked in every log line. */
export const SLACK_SECRET_VARIABLES = [
  "SLACK_BOT_TOKEN",
  "SLACK_SIGNING_SECRET",
  "SLACK_APP_TOKEN",
] as const;
