/**
 * `/imagine` text → subcommand and options, help, the app manifest and the Slack settings.
 */
import { describe, expect, it } from "vitest";
import { CHAT_COMMANDS } from "../../src/adapters/chat/commands.js";
import {
  helpText,
  parseSlashText,
  SLACK_BOT_SCOPES,
  slackManifest,
} from "../../src/adapters/slack/commands.js";
import { readSlackSettings } from "../../src/adapters/slack/settings.js";
import { ConfigError } from "../../src/core/errors.js";

describe("parseSlashText", () => {
  it("takes the whole text as imagine's subject by default, with name:value options", () => {
    const parsed = parseSlashText("a lighthouse at dusk seed:42 count:2");
    expect(parsed).toMatchObject({
      kind: "run",
      input: { subject: "a lighthouse at dusk", seed: 42, count: 2 },
    });
    expect(parsed.kind === "run" && parsed.command.name).toBe("imagine");
  });

  it("picks a subcommand by its first word; `imagine` forces the default", () => {
    const prompt = parseSlashText("prompt a lighthouse max_new_tokens:5");
    expect(prompt.kind === "run" && prompt.command.name).toBe("prompt");
    expect(prompt).toMatchObject({ input: { subject: "a lighthouse", maxNewTokens: 5 } });
    const forced = parseSlashText("imagine prompt engineering");
    expect(forced.kind === "run" && forced.command.name).toBe("imagine");
    expect(forced).toMatchObject({ input: { subject: "prompt engineering" } });
  });

  it("keeps words that only look like options in the subject, and never offers model_dir", () => {
    expect(parseSlashText("time: a clock")).toMatchObject({ input: { subject: "time: a clock" } });
    expect(parseSlashText("a cat model_dir:/etc")).toMatchObject({
      input: { subject: "a cat model_dir:/etc" },
    });
  });

  it("accepts the free-text option by name too (study action:start), but not twice", () => {
    expect(parseSlashText("study action:status")).toMatchObject({
      kind: "run",
      input: { action: "status" },
    });
    expect(parseSlashText("study status")).toMatchObject({ input: { action: "status" } });
    expect(parseSlashText("subject:lighthouse")).toMatchObject({
      input: { subject: "lighthouse" },
    });
    expect(parseSlashText("study action:start stop")).toMatchObject({
      kind: "usage",
      message: expect.stringMatching(/action is given twice/),
    });
  });

  it("returns usage for bad values and a missing subject, help for help or nothing", () => {
    expect(parseSlashText("")).toEqual({ kind: "help" });
    expect(parseSlashText("HELP")).toEqual({ kind: "help" });
    expect(parseSlashText("a cat seed:x")).toMatchObject({
      kind: "usage",
      message: expect.stringMatching(/seed/),
    });
    expect(parseSlashText("a cat count:99")).toMatchObject({
      kind: "usage",
      message: expect.stringMatching(/count/),
    });
    expect(parseSlashText("prompt seed:1")).toMatchObject({
      kind: "usage",
      message: expect.stringMatching(/Say what/),
    });
  });

  it("help lists every declared command", () => {
    const text = helpText();
    for (const command of CHAT_COMMANDS) expect(text).toContain(command.description);
  });
});

describe("slackManifest", () => {
  it("HTTP mode: the slash command and events at <url>/slack/events, scopes and reaction events", () => {
    const manifest = slackManifest({
      socketMode: false,
      requestUrl: "https://bot.example.com/",
    }) as {
      features: { slash_commands: { command: string; url?: string }[] };
      oauth_config: { scopes: { bot: string[] } };
      settings: {
        socket_mode_enabled: boolean;
        event_subscriptions: { request_url?: string; bot_events: string[] };
      };
    };
    expect(manifest.features.slash_commands).toEqual([
      expect.objectContaining({ command: "/imagine", url: "https://bot.example.com/slack/events" }),
    ]);
    expect(manifest.oauth_config.scopes.bot).toEqual([...SLACK_BOT_SCOPES]);
    expect(manifest.oauth_config.scopes.bot).toEqual(
      expect.arrayContaining([
        "commands",
        "chat:write",
        "files:write",
        "reactions:read",
        "reactions:write",
      ]),
    );
    expect(manifest.settings.event_subscriptions).toEqual({
      request_url: "https://bot.example.com/slack/events",
      bot_events: ["reaction_added", "reaction_removed"],
    });
    expect(manifest.settings.socket_mode_enabled).toBe(false);
  });

  it("Socket Mode: no URLs", () => {
    const text = JSON.stringify(slackManifest({ socketMode: true }));
    expect(text).toContain('"socket_mode_enabled":true');
    expect(text).not.toContain("url");
  });
});

describe("readSlackSettings", () => {
  it("reads tokens, port and API URL; Socket Mode with SLACK_APP_TOKEN", () => {
    expect(
      readSlackSettings({
        SLACK_BOT_TOKEN: "xoxb-1",
        SLACK_SIGNING_SECRET: "s",
        SLACK_API_URL: "http://127.0.0.1:9/api",
      }),
    ).toEqual({
      botToken: "xoxb-1",
      signingSecret: "s",
      port: 3000,
      apiUrl: "http://127.0.0.1:9/api/",
    });
    expect(
      readSlackSettings({ SLACK_BOT_TOKEN: "xoxb-1", SLACK_APP_TOKEN: "xapp-1", SLACK_PORT: "0" }),
    ).toMatchObject({
      appToken: "xapp-1",
      port: 0,
      apiUrl: "https://slack.com/api/",
    });
  });

  it("names the variable to set or fix", () => {
    expect(() => readSlackSettings({})).toThrow(/SLACK_BOT_TOKEN/);
    expect(() => readSlackSettings({ SLACK_BOT_TOKEN: "xoxb-1" })).toThrow(/SLACK_SIGNING_SECRET/);
    expect(() =>
      readSlackSettings({ SLACK_BOT_TOKEN: "x", SLACK_SIGNING_SECRET: "s", SLACK_PORT: "http" }),
    ).toThrow(/SLACK_PORT/);
    expect(() =>
      readSlackSettings({ SLACK_BOT_TOKEN: "x", SLACK_APP_TOKEN: "xoxb-wrong" }),
    ).toThrow(ConfigError);
    expect(() =>
      readSlackSettings({
        SLACK_BOT_TOKEN: "x",
        SLACK_SIGNING_SECRET: "s",
        SLACK_API_URL: "ftp://x",
      }),
    ).toThrow(/SLACK_API_URL/);
  });
});

describe("imagine-bot register slack", () => {
  it("prints the manifest; HTTP mode without --url is a usage error", async () => {
    const { runCli } = await import("../helpers/cli.js");
    const socket = await runCli(["register", "slack", "--socket"]);
    expect(socket.code).toBe(0);
    const manifest = JSON.parse(socket.stdout) as { settings: { socket_mode_enabled: boolean } };
    expect(manifest.settings.socket_mode_enabled).toBe(true);
    const http = await runCli(["register", "slack", "--url", "https://bot.example.com"]);
    expect(JSON.parse(http.stdout).settings.event_subscriptions.request_url).toBe(
      "https://bot.example.com/slack/events",
    );
    const missing = await runCli(["register", "slack"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--url/);
  });
});
