/**
 * `imagine-bot safety check` as a user runs it: a child process, its stdout, stderr and exit code.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TMP = mkdtempSync(join(tmpdir(), "imagine-safety-"));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

function cli(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", resolve(ROOT, "src/adapters/cli/main.ts"), "safety", "check", ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", IMAGINE_LOG_LEVEL: "silent", ...options.env },
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.stdin.end(options.stdin ?? "");
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

describe("imagine-bot safety check", () => {
  it("checks TEXT and exits 0 whether or not it is blocked", async () => {
    const blocked = await cli(["Oh f.u.c.k, sh1t"]);
    expect(blocked).toEqual({
      code: 0,
      stdout: "blocked\tfuck,shit\tOh f.u.c.k, sh1t\n",
      stderr: "",
    });
    const ok = await cli(["a peacock in Scunthorpe"]);
    expect(ok).toEqual({ code: 0, stdout: "ok\t\ta peacock in Scunthorpe\n", stderr: "" });
  });

  it("checks each line of --input FILE, as JSON with --json", async () => {
    const file = join(TMP, "captions.txt");
    writeFileSync(file, "a lighthouse at sunset\nbig b00bs\r\n\ncocktail class\n");
    const { code, stdout, stderr } = await cli(["--input", file, "--json"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(
      stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line)),
    ).toEqual([
      { text: "a lighthouse at sunset", blocked: false, matches: [] },
      { text: "big b00bs", blocked: true, matches: ["boobs"] },
      { text: "", blocked: false, matches: [] },
      { text: "cocktail class", blocked: false, matches: [] },
    ]);
    const human = await cli(["--input", file]);
    expect(human.stdout.split("\n")[1]).toBe("blocked\tboobs\tbig b00bs");
  });

  it("reads stdin lines when there is neither TEXT nor --input", async () => {
    const { code, stdout } = await cli([], { stdin: "hello\nporn\n" });
    expect(code).toBe(0);
    expect(stdout).toBe("ok\t\thello\nblocked\tporn\tporn\n");
  });

  it("uses safety.extraBlockedWords and allowedWords from configuration", async () => {
    const config = join(TMP, "config.json");
    writeFileSync(
      config,
      JSON.stringify({ safety: { extraBlockedWords: ["gore"], allowedWords: ["nude"] } }),
    );
    const { code, stdout } = await cli(["--json", "nude lipstick, gore"], {
      env: { IMAGINE_CONFIG: config },
    });
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({
      text: "nude lipstick, gore",
      blocked: true,
      matches: ["gore"],
    });
  });

  it.each([
    [["--input", "/nonexistent/captions.txt"], /--input \/nonexistent\/captions.txt: no such file/],
    [["some text", "--input", "/etc/hostname"], /not both/],
    [["--frobnicate"], /unknown option/],
  ])("exits 2 with a message for %j", async (args, message) => {
    const { code, stdout, stderr } = await cli(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
  });
});
