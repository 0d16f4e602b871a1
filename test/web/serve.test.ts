/**
 * `imagine-bot serve` runs the web survey beside the chat adapters when IMAGINE_WEB_SECRET is
 * set, and closes it on shutdown; without the secret there is no web server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServe } from "../../src/adapters/cli/serve.js";
import { createLogger } from "../../src/core/logger.js";
import { FakeDiscord } from "../fakes/discord.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { FakeBackend } from "../pipeline/fakes.js";

const silent = createLogger({ level: "silent" });
let fake: FakeDiscord;
let dataDir: string;

beforeAll(async () => {
  fake = new FakeDiscord();
  await fake.start();
  dataDir = mkdtempSync(join(tmpdir(), "imagine-serve-web-"));
});
afterAll(async () => {
  await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    DISCORD_TOKEN: fake.token,
    DISCORD_API_URL: fake.apiUrl,
    IMAGINE_DATA_DIR: dataDir,
    IMAGINE_LOG_LEVEL: "silent",
    ...extra,
  };
}

describe("serve with the web survey", () => {
  it("serves rater links when IMAGINE_WEB_SECRET is set and stops with the rest", async () => {
    const handle = await startServe({
      env: env({ IMAGINE_WEB_SECRET: "s".repeat(40), IMAGINE_WEB_PORT: "0" }),
      backend: new FakeBackend(),
      votes: await memoryVoteStore(),
      logger: silent,
      graceMs: 0,
    });
    const web = handle.web;
    if (web === undefined) throw new Error("no web server");
    // A forged link is refused like any bad link: the server is there and checks it.
    const forged = await fetch(`${web.url}/s/v1.forged.link`);
    expect(forged.status).toBe(403);
    await handle.shutdown("test");
    await expect(fetch(`${web.url}/s/v1.forged.link`)).rejects.toThrow();
  });

  it("runs no web server without the secret", async () => {
    const handle = await startServe({
      env: env(),
      backend: new FakeBackend(),
      votes: await memoryVoteStore(),
      logger: silent,
      graceMs: 0,
    });
    expect(handle.web).toBeUndefined();
    await handle.shutdown("test");
  });
});
