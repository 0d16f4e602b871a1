import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readTokenFile } from "../../src/core/data/tokenFile.js";
import { runCli } from "../helpers/cli.js";

const _ROOT = resolve(import.meta.dirname, "..", "..");

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-cli-prepare-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("imagine-bot data prepare", () => {
  it("drops explicit captions with the real blocklist, in 2 workers, and prints the report", async () => {
    const csv = join(dir, "a.csv");
    await writeFile(csv, "URL,TEXT\nx,a lighthouse on a cliff\ny,what the fuck is this\nz,\n");
    const txt = join(dir, "b.txt");
    await writeFile(txt, "a red fox &amp; a hare\n");
    const out = join(dir, "out");
    const args = ["data", "prepare", "--input", csv, txt, "--out", out];
    const { code, stdout, stderr } = await runCli([
      ...args,
      "--workers",
      "2",
      "--eval-fraction",
      "0",
      "--json",
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({
      read: 4,
      kept: 2,
      dropped: { empty: 1, explicit: 1, malformed: 0 },
      limit: 450_000,
      seed: 1,
      tags: { start: "<|startoftext|>", end: "<|endoftext|>" },
      filter: "loadExplicitFilter from index.ts",
      workers: 2,
    });
    expect(await readFile(join(out, "train.txt"), "utf8")).toBe(
      "a lighthouse on a cliff\na red fox & a hare\n",
    );
    expect((await readTokenFile(join(out, "train.tokens"))).header.documents).toBe(2);

    const human = await runCli([...args, "--workers", "1", "--no-tags", "--limit", "1"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(
      /^read 1 rows from 2 file\(s\); kept 1 \(the --limit of 1\); dropped 0 empty/,
    );
    expect(human.stdout).toMatch(/wrote .*report\.json/);
    expect((await readTokenFile(join(out, "train.tokens"))).header.tags).toBeNull();
  });

  it("exits 2 with the columns a file has when the column is missing", async () => {
    const csv = join(dir, "a.csv");
    await writeFile(csv, "url,alt\nx,y\n");
    const { code, stderr } = await runCli([
      "data",
      "prepare",
      "--input",
      csv,
      "--out",
      join(dir, "o"),
      "--column",
      "TEXT",
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain(`${csv} has no column "TEXT" (its columns: "url", "alt")`);
  });

  it("data lengths prints mean, median and p90", async () => {
    const txt = join(dir, "c.txt");
    await writeFile(txt, ["word", "", "word word", "word word word"].join("\n"));
    const json = await runCli(["data", "lengths", "--input", txt, "--json"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      count: 3,
      mean: 2,
      median: 2,
      p90: 3,
      min: 1,
      max: 3,
      limit: 300_000,
      dropped: { empty: 1, malformed: 0 },
    });
    const human = await runCli(["data", "lengths", "--input", txt, "--workers", "1"]);
    expect(human.stdout).toContain("GPT-2 tokens: mean 2.00, median 2, p90 3, min 1, max 3");
  });
});
