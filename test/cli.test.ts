import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";

const ROOT = resolve(import.meta.dirname, "..");
const MODEL_DIR = resolve(ROOT, "models", "tiny-caption-gpt2");

describe("imagine-bot prompt", () => {
  it("prints five complete prompts as JSON, the same on every run", async () => {
    const args = [
      "prompt",
      "a lighthouse",
      "-n",
      "5",
      "--model",
      MODEL_DIR,
      "--seed",
      "1",
      "--json",
    ];
    const first = await runCli(args);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const result = JSON.parse(first.stdout);
    expect(result.subject).toBe("a lighthouse");
    expect(result.arm).toBe(`model:${MODEL_DIR}`);
    expect(result.prompts).toHaveLength(5);
    for (const prompt of result.prompts) {
      expect(Object.keys(prompt).sort()).toEqual(["complete", "text", "tokens"]);
      expect(prompt.text.startsWith("a lighthouse")).toBe(true);
    }
    const second = await runCli(args);
    expect(second.stdout).toBe(first.stdout);
  });

  it("uses the default arm from configuration without --model", async () => {
    const { code, stdout } = await runCli(["prompt", "a red fox", "-n", "2", "--seed", "3"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^# ft-tags, seed 3\n/);
    expect(stdout.trim().split("\n")).toHaveLength(3);
  });

  it.each([
    [["prompt", "   "], /subject is empty/],
    [["prompt", "x".repeat(201)], /limit is 200/],
    [["prompt", "a\u0007bell"], /control character/],
    [["prompt", "a lighthouse", "-n", "0"], /whole number from 1 to 16/],
    [["prompt", "a lighthouse", "--arm", "nope"], /no arm called "nope"/],
    [["prompt", "a lighthouse", "--model", "/nonexistent/model"], /does not exist/],
    [["frobnicate"], /unknown command/],
  ])("exits 2 with a clear message for %j", async (args, message) => {
    const { code, stderr, stdout } = await runCli(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
  });

  it("exits 2 naming the variable when configuration is wrong", async () => {
    const { code, stderr } = await runCli(["prompt", "a lighthouse"], {
      IMAGINE_MODEL_DIR: "/nonexistent",
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/IMAGINE_MODEL_DIR/);
  });

  it("has --help on every command", async () => {
    for (const args of [
      ["--help"],
      ["prompt", "--help"],
      ["data", "--help"],
      ["data", "tokenize", "--help"],
    ]) {
      const { code, stdout } = await runCli(args);
      expect(code).toBe(0);
      expect(stdout).toMatch(/Usage: imagine-bot/);
    }
  });
});
