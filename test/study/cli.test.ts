import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

const dataDir = mkdtempSync(join(tmpdir(), "imagine-study-cli-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
const env = { IMAGINE_DATA_DIR: dataDir, IMAGINE_VOTE_STORE: "memory://" };

describe("imagine-bot study / stats (the real bin, configured store)", () => {
  it("prints the paper's plan as JSON", async () => {
    const args = [
      "study",
      "plan",
      "--concepts",
      "a,b,c,d,e,f,g,h,i,j",
      "--arms",
      "base,ft-no-tags,ft-tags",
      "--seed",
      "9",
      "--json",
    ];
    const { code, stdout, stderr } = await runCli(args, env);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const plan = JSON.parse(stdout);
    expect(plan.items).toHaveLength(150);
    expect(plan.surveys).toBe(2);
  });

  it("stats on an empty store says so; study results of an unknown study exits 2", async () => {
    const stats = await runCli(["stats"], env);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toContain("no votes yet");
    const missing = await runCli(["study", "results", "nope-0000"], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no study nope-0000/);
  });
});
