/**
 * `imagine-bot serve` and `imagine-bot register discord` against the fake Discord: adapters
 * start from credentials, shutdown (what SIGINT/SIGTERM call) refuses new commands, lets the
 * running job finish or fails it after the grace period, disconnects and closes the store.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CHAT_COMMANDS } from "../../src/adapters/chat/commands.js";
import { main } from "../../src/adapters/cli/main.js";
import { startServe } from "../../src/adapters/cli/serve.js";
import type { CommandReport, DiscordAdapter } from "../../src/adapters/discord/index.js";
import { registerDiscordCommands } from "../../src/adapters/discord/register.js";
import { UserError } from "../../src/core/errors.js";
import { createLogger } from "../../src/core/logger.js";
import { FakeDiscord, type RecordedCall } from "../fakes/discord.js";
import { allGenerations, memoryVoteStore } from "../helpers/votes.js";
import { FakeBackend, nextEvent, type RenderCall } from "../pipeline/fakes.js";

const silent = createLogger({ level: "silent" });
let fake: FakeDiscord;
let dataDir: string;

beforeAll(async () => {
  fake = new FakeDiscord();
  await fake.start();
  dataDir = mkdtempSync(join(tmpdir(), "imagine-serve-"));
});
afterAll(async () => {
  await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
});
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

function env(): NodeJS.ProcessEnv {
  return {
    DISCORD_TOKEN: fake.token,
    DISCORD_API_URL: fake.apiUrl,
    IMAGINE_DATA_DIR: dataDir,
    IMAGINE_LOG_LEVEL: "silent",
  };
}

function commandDone(adapter: DiscordAdapter, id: string): Promise<CommandReport> {
  return nextEvent<CommandReport>(adapter.events, "command", (r) => r.id === id);
}

function disconnected(): Promise<void> {
  if (fake.connections === 0) return Promise.resolve();
  return nextEvent(fake, "disconnect", () => fake.connections === 0);
}

const NAMES = ["imagine", "prompt", "stats", "study", "export"];
const subject = [{ name: "subject", type: 3, value: "a lighthouse" }];

describe("serve", () => {
  it("exits with a usage error naming the variables when no platform is configured", async () => {
    await expect(startServe({ env: {} })).rejects.toThrow(UserError);
    await expect(startServe({ env: {} })).rejects.toThrow(/DISCORD_TOKEN.*SLACK_BOT_TOKEN/);
    vi.stubEnv("DISCORD_TOKEN", "");
    vi.stubEnv("SLACK_BOT_TOKEN", "");
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await main(["serve"])).toBe(2);
    expect(String(stderr.mock.calls[0]?.[0])).toMatch(/DISCORD_TOKEN/);
  });

  it("on shutdown refuses new commands, lets the running job finish, disconnects and closes the store", async () => {
    const backend = new FakeBackend("manual");
    const votes = await memoryVoteStore();
    const closeVotes = vi.spyOn(votes, "close");
    const handle = await startServe({
      env: env(),
      backend,
      votes,
      logger: silent,
      graceMs: 60_000,
    });
    expect(handle.adapters.map((a) => a.name)).toEqual(["discord"]);
    const adapter = handle.adapters[0] as DiscordAdapter;

    const render = nextEvent<RenderCall>(backend, "render");
    const job = fake.interact({ name: "imagine", options: subject });
    const jobDone = commandDone(adapter, job.id);
    const running = await render;

    const closing = handle.shutdown("SIGTERM");
    const late = fake.interact({ name: "imagine", options: subject });
    expect(await commandDone(adapter, late.id)).toMatchObject({ outcome: "refused" });
    expect(fake.interactionCalls(late.token)[0]?.json).toMatchObject({
      type: 4,
      data: { flags: 64, content: "The bot is shutting down; try again in a moment." },
    });

    running.resolve();
    const report = await jobDone;
    expect(report).toMatchObject({ outcome: "done" });
    const final = fake
      .interactionCalls(job.token)
      .filter((c) => c.method === "PATCH")
      .at(-1) as RecordedCall;
    expect(final.files).toHaveLength(1);

    await closing;
    await handle.closed;
    expect(closeVotes).toHaveBeenCalled();
    await disconnected();
    expect(fake.connections).toBe(0);
    // Generations went to the vote store, with the message recorded.
    const [generation] = await allGenerations(votes);
    expect(generation?.messageRef).toBe(report.messages[0]?.ref);
  });

  it("fails a job still running after the grace period, telling the person why", async () => {
    const backend = new FakeBackend("hang");
    const votes = await memoryVoteStore();
    const closeVotes = vi.spyOn(votes, "close");
    const handle = await startServe({ env: env(), backend, votes, logger: silent, graceMs: 0 });
    const adapter = handle.adapters[0] as DiscordAdapter;
    const render = nextEvent(backend, "render");
    const job = fake.interact({ name: "imagine", options: subject });
    const jobDone = commandDone(adapter, job.id);
    await render;

    await handle.shutdown("SIGINT");
    expect(await jobDone).toMatchObject({ outcome: "failed" });
    const final = fake.interactionCalls(job.token).at(-1) as RecordedCall;
    expect((final.json as { content: string }).content).toMatch(
      /^Sorry, that failed: The bot is shutting down; try again in a moment\. \(reference [0-9a-f]{8}\)$/,
    );
    expect(closeVotes).toHaveBeenCalled();
    await disconnected();
  });
});

describe("register discord", () => {
  function puts(path: string): RecordedCall[] {
    return fake.calls.filter((c) => c.method === "PUT" && c.path === path);
  }

  it("overwrites guild and global commands with the declarations", async () => {
    const settings = { token: fake.token, applicationId: fake.applicationId, apiUrl: fake.apiUrl };
    const guild = await registerDiscordCommands(settings, CHAT_COMMANDS, {
      guildId: fake.guildId,
      maxSubjectLength: 200,
    });
    expect(guild).toEqual({ scope: "guild", guildId: fake.guildId, names: NAMES });
    const guildPut = puts(`/applications/${fake.applicationId}/guilds/${fake.guildId}/commands`);
    expect(guildPut).toHaveLength(1);
    expect(guildPut[0]?.headers.authorization).toBe(`Bot ${fake.token}`);
    const [imagine, prompt] = (guildPut[0]?.json ?? []) as {
      name: string;
      type: number;
      options: {
        name: string;
        type: number;
        required: boolean;
        max_length?: number;
        min_value?: number;
        max_value?: number;
      }[];
    }[];
    expect(imagine).toMatchObject({
      name: "imagine",
      type: 1,
      description: "Write a prompt for a subject and render it",
    });
    expect(imagine?.options).toEqual([
      {
        name: "subject",
        type: 3,
        required: true,
        max_length: 200,
        description: 'what the image should show, e.g. "a lighthouse"',
      },
      {
        name: "count",
        type: 4,
        required: false,
        min_value: 1,
        max_value: 16,
        description: "how many images, one per prompt",
      },
      {
        name: "arm",
        type: 3,
        required: false,
        description: "which configured arm writes the prompts",
      },
      {
        name: "seed",
        type: 4,
        required: false,
        min_value: 0,
        max_value: 4294967295,
        description: "same seed, same prompts and images",
      },
    ]);
    expect(prompt?.options.map((o) => o.name)).toEqual([
      "subject",
      "count",
      "arm",
      "seed",
      "max_new_tokens",
    ]);
    const all = (guildPut[0]?.json ?? []) as {
      name: string;
      default_member_permissions?: string;
    }[];
    expect(all.map((c) => [c.name, c.default_member_permissions])).toEqual([
      ["imagine", undefined],
      ["prompt", undefined],
      ["stats", "32"],
      ["study", "32"],
      ["export", "32"],
    ]);
    expect(JSON.stringify(guildPut[0]?.json)).not.toContain("model_dir");

    const global = await registerDiscordCommands(settings, CHAT_COMMANDS, {
      maxSubjectLength: 200,
    });
    expect(global).toEqual({ scope: "global", names: NAMES });
    const globalPut = puts(`/applications/${fake.applicationId}/commands`);
    expect(globalPut).toHaveLength(1);
    expect(globalPut[0]?.json).toEqual(guildPut[0]?.json);
  });

  it("runs from the command line", async () => {
    vi.stubEnv("DISCORD_TOKEN", fake.token);
    vi.stubEnv("DISCORD_APPLICATION_ID", fake.applicationId);
    vi.stubEnv("DISCORD_API_URL", fake.apiUrl);
    vi.stubEnv("DISCORD_GUILD_ID", "");
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    expect(await main(["register", "discord", "--guild", fake.guildId])).toBe(0);
    expect(String(stdout.mock.calls[0]?.[0])).toBe(
      `Registered 5 commands in server ${fake.guildId}: ${NAMES.join(", ")}\n`,
    );
    vi.stubEnv("DISCORD_APPLICATION_ID", "");
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await main(["register", "discord"])).toBe(2);
    expect(String(stderr.mock.calls.at(-1)?.[0])).toMatch(/DISCORD_APPLICATION_ID/);
  });
});
