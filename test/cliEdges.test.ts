/**
 * Predictable edges of the command line: what the user can fix exits 2 with a message that says
 * what to fix — an --out file in a folder that does not exist, an unknown study id, a --model
 * that is a file.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ROOT, runCli } from "./helpers/cli.js";

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "imagine-edges-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("command-line edges exit 2 with what to fix", () => {
  it("export --out into a folder that does not exist", async () => {
    const out = join(dataDir, "no", "such", "x.csv");
    const { code, stderr } = await runCli(["export", "--out", out], { IMAGINE_DATA_DIR: dataDir });
    expect(code).toBe(2);
    expect(stderr).toContain(
      `cannot write ${out}: the folder ${join(dataDir, "no", "such")} does not exist`,
    );
  });

  it("votes export --study with an unknown id, like stats --study", async () => {
    const env = { IMAGINE_DATA_DIR: dataDir };
    const votes = await runCli(["votes", "export", "--study", "nope"], env);
    expect(votes.code).toBe(2);
    expect(votes.stdout).toBe("");
    expect(votes.stderr).toMatch(/there is no study nope/);
    const stats = await runCli(["stats", "--study", "nope"], env);
    expect(stats.code).toBe(2);
  });

  it("--model naming a file", async () => {
    const file = resolve(ROOT, "README.md");
    const { code, stderr } = await runCli(["prompt", "a cat", "--model", file], {
      IMAGINE_DATA_DIR: dataDir,
    });
    expect(code).toBe(2);
    expect(stderr).toContain(`${file} is a file, not a model directory`);
  });
});
