/**
 * serve says why a platform did not start in words an operator can act on: an unreachable API
 * is PLATFORM_UNREACHABLE naming the URL and the variable, a rejected token a configuration
 * error naming the token's variable — not "internal".
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServe } from "../../src/adapters/cli/serve.js";
import { BotError, ConfigError } from "../../src/core/errors.js";
import { createLogger } from "../../src/core/logger.js";
import { FakeDiscord } from "../fakes/discord.js";
import { closedLoopbackPort } from "../fakes/loopback.js";
import { FakeSlack } from "../fakes/slack.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { FakeBackend } from "../pipeline/fakes.js";

const silent = createLogger({ level: "silent" });
let dataDir: string;
beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-start-failure-"));
});
afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

async function serveWith(env: Record<string, string>): Promise<unknown> {
  try {
    const handle = await startServe({
      env: { IMAGINE_DATA_DIR: dataDir, IMAGINE_LOG_LEVEL: "silent", ...env },
      backend: new FakeBackend(),
      votes: await memoryVoteStore(),
      logger: silent,
      graceMs: 0,
    });
    await handle.shutdown("test");
    return undefined;
  } catch (error) {
    return error;
  }
}

describe("serve when a platform cannot start", () => {
  it("Discord unreachable: PLATFORM_UNREACHABLE with the URL and DISCORD_API_URL", async () => {
    const url = `http://127.0.0.1:${await closedLoopbackPort()}/api`;
    const error = await serveWith({ DISCORD_TOKEN: "t", DISCORD_API_URL: url });
    expect(error).toBeInstanceOf(BotError);
    expect((error as BotError).code).toBe("PLATFORM_UNREACHABLE");
    expect((error as Error).message).toMatch(
      new RegExp(`cannot reach Discord at ${url} \\(ECONNREFUSED\\).*DISCORD_API_URL`),
    );
  });

  it("Discord rejects the token: a configuration error naming DISCORD_TOKEN", async () => {
    const fake = new FakeDiscord();
    await fake.start();
    try {
      const error = await serveWith({ DISCORD_TOKEN: "wrong", DISCORD_API_URL: fake.apiUrl });
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/Discord rejected DISCORD_TOKEN/);
    } finally {
      await fake.close();
    }
  });

  it("Slack rejects the token: a configuration error naming SLACK_BOT_TOKEN", async () => {
    const fake = await new FakeSlack().start();
    try {
      const error = await serveWith({
        SLACK_BOT_TOKEN: "xoxb-wrong",
        SLACK_SIGNING_SECRET: "s3cret",
        SLACK_API_URL: fake.apiUrl,
        SLACK_PORT: "0",
      });
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/Slack rejected SLACK_BOT_TOKEN/);
    } finally {
      await fake.close();
    }
  });

  it("Slack unreachable: PLATFORM_UNREACHABLE with SLACK_API_URL", async () => {
    const url = `http://127.0.0.1:${await closedLoopbackPort()}/api/`;
    const error = await serveWith({
      SLACK_BOT_TOKEN: "xoxb-x",
      SLACK_SIGNING_SECRET: "s3cret",
      SLACK_API_URL: url,
      SLACK_PORT: "0",
    });
    expect((error as BotError).code).toBe("PLATFORM_UNREACHABLE");
    expect((error as Error).message).toMatch(/cannot reach Slack at .*SLACK_API_URL/);
  });
});
