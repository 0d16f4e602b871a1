import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFolderAtomically } from "../../src/core/atomicDir.js";
import { UserError } from "../../src/core/errors.js";
import { runCli, testProcessEnv } from "../helpers/cli.js";

const ROOT = resolve(import.meta.dirname, "..", "..");

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-atomic-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeFolderAtomically", () => {
  it("swaps a finished output in over the earlier one and leaves no staging folder", async () => {
    const out = join(dir, "out");
    await mkdir(out);
    await writeFile(join(out, "a.txt"), "old");
    await writeFolderAtomically(out, ["a.txt"], async (staging) => {
      await writeFile(join(staging, "a.txt"), "new");
    });
    expect(await readFile(join(out, "a.txt"), "utf8")).toBe("new");
    expect(await readdir(dir)).toEqual(["out"]);
  });

  it("keeps the earlier output untouched when writing fails, and removes the staging folder", async () => {
    const out = join(dir, "out");
    await mkdir(out);
    await writeFile(join(out, "a.txt"), "old");
    await expect(
      writeFolderAtomically(out, ["a.txt"], async (staging) => {
        await writeFile(join(staging, "a.txt"), "half");
        throw new Error("disk full");
      }),
    ).rejects.toThrow("disk full");
    expect(await readFile(join(out, "a.txt"), "utf8")).toBe("old");
    expect(await readdir(dir)).toEqual(["out"]);
  });

  it("refuses a folder holding files it does not own, before writing anything", async () => {
    const out = join(dir, "out");
    await mkdir(out);
    await writeFile(join(out, "thesis.tex"), "precious");
    let wrote = false;
    const attempt = writeFolderAtomically(out, ["a.txt"], async () => {
      wrote = true;
    });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/thesis\.tex.*new or empty folder/);
    expect(wrote).toBe(false);
    expect(await readFile(join(out, "thesis.tex"), "utf8")).toBe("precious");
  });

  it("refuses a destination that is a file", async () => {
    const out = join(dir, "out");
    await writeFile(out, "x");
    await expect(writeFolderAtomically(out, [], async () => {})).rejects.toThrow(/is a file/);
  });
});

describe("data prepare killed mid-run", () => {
  it("leaves the earlier good output readable after kill -9", async () => {
    const small = join(dir, "small.txt");
    await writeFile(small, "a lighthouse on a cliff\na red fox in the snow\n");
    const out = join(dir, "out");
    const first = await runCli(["data", "prepare", "--input", small, "--out", out, "--json"]);
    expect(first.code).toBe(0);
    const before = await readFile(join(out, "report.json"), "utf8");
    const trainBefore = await readFile(join(out, "train.tokens"));

    // Big enough that the run is still writing when it is killed.
    const big = join(dir, "big.txt");
    const lines = Array.from({ length: 200_000 }, (_, i) => `a photo of house number ${i}`);
    await writeFile(big, `${lines.join("\n")}\n`);
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "src/adapters/cli/main.ts"),
        "data",
        "prepare",
        "--input",
        big,
        "--out",
        out,
        "--workers",
        "1",
      ],
      { cwd: ROOT, env: { ...testProcessEnv(), IMAGINE_LOG_LEVEL: "silent" }, stdio: "ignore" },
    );
    const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()));
    // Kill once the staging folder has token data in it: the run is mid-write.
    const staged = await waitForStagedTokens(dir);
    expect(staged).toBe(true);
    child.kill("SIGKILL");
    await exited;

    expect(await readFile(join(out, "report.json"), "utf8")).toBe(before);
    expect(await readFile(join(out, "train.tokens"))).toEqual(trainBefore);
    // The next run ignores the abandoned staging folder and replaces the output whole.
    const again = await runCli(["data", "prepare", "--input", small, "--out", out, "--json"]);
    expect(again.code).toBe(0);
  });
});

/** Polls the folder until a staging folder holds a non-empty train.tokens (or the run ended). */
async function waitForStagedTokens(parent: string): Promise<boolean> {
  for (let i = 0; i < 6000; i++) {
    for (const name of await readdir(parent)) {
      if (!name.startsWith(".out.partial-")) continue;
      const size = await stat(join(parent, name, "train.tokens")).then(
        (s) => s.size,
        () => 0,
      );
      if (size > 4096) return true;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}
