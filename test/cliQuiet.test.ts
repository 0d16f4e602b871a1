/**
 * One-shot commands are quiet on a terminal: results on stdout, one line per failure on stderr
 * with a reference, and the JSON log (the full error under that reference) in
 * <data dir>/logs/cli.log; `--verbose` puts the log back on stderr.
 */

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closedLoopbackPort } from "./fakes/loopback.js";
import { runCli } from "./helpers/cli.js";

const MODEL_DIR = resolve(import.meta.dirname, "..", "models", "tiny-caption-gpt2");

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "imagine-quiet-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("quiet one-shot commands", () => {
  it("an unreachable image server: one line with the reference, the full error in the log file", async () => {
    const env = {
      IMAGINE_DATA_DIR: dataDir,
      IMAGINE_MODEL_DIR: MODEL_DIR,
      IMAGINE_LOG_LEVEL: "info",
      A1111_URL: `http://127.0.0.1:${await closedLoopbackPort()}`,
    };
    const { code, stdout, stderr } = await runCli(["imagine", "a lighthouse", "--seed", "1"], env);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    const lines = stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    const reference = /reference ([0-9a-z]+); the full error is in (\S+)\)$/.exec(lines[0] ?? "");
    if (reference === null) throw new Error(`no reference in: ${stderr}`);
    const [, id, file] = reference;
    expect(file).toBe(join(dataDir, "logs", "cli.log"));
    const log = await readFile(join(dataDir, "logs", "cli.log"), "utf8");
    const entries = log
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { reference?: string; err?: { stack?: string } });
    const logged = entries.filter((entry) => entry.reference === id);
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.some((entry) => typeof entry.err?.stack === "string")).toBe(true);
  });

  it("prompt prints its prompts and no log line; --verbose logs to stderr", async () => {
    const env = { IMAGINE_DATA_DIR: dataDir, IMAGINE_LOG_LEVEL: "debug" };
    const args = ["prompt", "a lighthouse", "--model", MODEL_DIR, "--seed", "1", "-n", "2"];
    const quiet = await runCli(args, env);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe("");
    expect(quiet.stdout).toMatch(/^# model:.*, seed 1\n/);
    expect(await readFile(join(dataDir, "logs", "cli.log"), "utf8")).toMatch(/prompts written/);
    const verbose = await runCli(["--verbose", ...args], env);
    expect(verbose.code).toBe(0);
    expect(verbose.stderr).toMatch(/"msg":"prompts written"/);
  });
});
