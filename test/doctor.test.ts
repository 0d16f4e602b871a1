/**
 * `imagine-bot doctor` against fakes on 127.0.0.1: every check passes on a working setup;
 * each broken part is one failed line that says what to fix, and the exit code is 1.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeAutomatic1111 } from "./fakes/automatic1111.js";
import { FakeDiscord } from "./fakes/discord.js";
import { FakeSlack } from "./fakes/slack.js";
import { runCli } from "./helpers/cli.js";

const MODEL_DIR = resolve(import.meta.dirname, "..", "models", "tiny-caption-gpt2");

let a1111: FakeAutomatic1111;
let discord: FakeDiscord;
let slack: FakeSlack;
let dataDir: string;

beforeAll(async () => {
  a1111 = await new FakeAutomatic1111().start();
  discord = new FakeDiscord();
  await discord.start();
  slack = await new FakeSlack().start();
  dataDir = await mkdtemp(join(tmpdir(), "imagine-doctor-"));
});
afterAll(async () => {
  await Promise.all([a1111.stop(), discord.close(), slack.close()]);
  await rm(dataDir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    IMAGINE_DATA_DIR: dataDir,
    IMAGINE_MODEL_DIR: MODEL_DIR,
    A1111_URL: a1111.url,
    DISCORD_TOKEN: discord.token,
    DISCORD_API_URL: discord.apiUrl,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_SIGNING_SECRET: "s3cret",
    SLACK_API_URL: slack.apiUrl,
    ...extra,
  };
}

interface Report {
  ok: boolean;
  checks: { name: string; state: string; detail: string }[];
}

describe("imagine-bot doctor", () => {
  it("passes every check of a working setup, one line each", async () => {
    const { code, stdout } = await runCli(["doctor", "--json"], env());
    const report = JSON.parse(stdout) as Report;
    expect(report.checks.filter((c) => c.state === "fail")).toEqual([]);
    expect(code).toBe(0);
    const names = report.checks.map((c) => c.name);
    expect(names).toEqual(
      expect.arrayContaining(["configuration", "data directory", "image backend", "vote store"]),
    );
    expect(names.some((n) => n.startsWith("arm "))).toBe(true);
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    expect(byName.get("discord")?.detail).toMatch(/^bot /);
    expect(byName.get("slack")?.detail).toMatch(/^bot /);
    expect(byName.get("image backend")?.detail).toMatch(/automatic1111: .* 1 checkpoint/);
    expect(byName.get("web survey")?.state).toBe("skip");

    const table = await runCli(["doctor"], env());
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ok {4}configuration/m);
    expect(table.stdout.trim().split("\n").at(-1)).toBe("every check passed");
  });

  it("names what is wrong: a rejected token, an unreachable backend, a broken model directory", async () => {
    // A folder, so the configuration is valid, but without the model's files.
    const emptyModel = join(dataDir, "empty-model");
    await mkdir(emptyModel, { recursive: true });
    const { code, stdout } = await runCli(
      ["doctor", "--json"],
      env({
        DISCORD_TOKEN: "wrong",
        A1111_URL: "http://127.0.0.1:9",
        IMAGINE_MODEL_DIR: emptyModel,
      }),
    );
    expect(code).toBe(1);
    const report = JSON.parse(stdout) as Report;
    expect(report.ok).toBe(false);
    const failed = new Map(
      report.checks.filter((c) => c.state === "fail").map((c) => [c.name, c.detail]),
    );
    expect(failed.get("discord")).toMatch(/rejected DISCORD_TOKEN \(401\)/);
    expect(failed.get("image backend")).toMatch(/127\.0\.0\.1:9/);
    expect([...failed.keys()].some((name) => name.startsWith("arm "))).toBe(true);
    // Slack is still fine: one broken part does not hide the others.
    expect(report.checks.find((c) => c.name === "slack")?.state).toBe("ok");
  });

  it("stops after the configuration check when the configuration is invalid", async () => {
    const { code, stdout } = await runCli(["doctor"], env({ IMAGINE_LOG_LEVEL: "loud" }));
    expect(code).toBe(1);
    expect(stdout).toMatch(/^fail {2}configuration {2}/m);
    expect(stdout).toContain("set by IMAGINE_LOG_LEVEL");
    expect(stdout).not.toMatch(/vote store/);
  });
});
