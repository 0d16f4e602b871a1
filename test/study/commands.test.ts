import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import sharp from "sharp";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { registerStudyCommands } from "../../src/adapters/cli/study.js";
import type { CommandContext } from "../../src/commands/command.js";
import { exportCommand } from "../../src/commands/export.js";
import { statsCommand } from "../../src/commands/stats.js";
import { studyCommand } from "../../src/commands/study.js";
import { createLogger } from "../../src/core/logger.js";
import type { PromptArms } from "../../src/core/prompt/arms.js";
import { StudyManager } from "../../src/core/study/manager.js";
import type { KeyvVoteStore } from "../../src/core/votes/index.js";
import { TINY_MODEL_DIR, testConfig } from "../helpers/config.js";
import { memoryVoteStore, tickingClock } from "../helpers/votes.js";
import { generation, must } from "./fixtures.js";

const ARMS = ["base", "ft-no-tags", "ft-tags"];
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

let dataDir: string;
let votes: KeyvVoteStore;
let studies: StudyManager;
let context: CommandContext;
let studyId: string;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "imagine-cmd-"));
  dirs.push(dataDir);
  const arm = { kind: "onnx" as const, modelDir: TINY_MODEL_DIR };
  const config = testConfig({
    dataDir,
    defaultArm: "ft-tags",
    arms: { base: arm, "ft-no-tags": arm, "ft-tags": arm },
  });
  votes = await memoryVoteStore(tickingClock());
  studies = new StudyManager({ dataDir });
  context = {
    config,
    // Only the arm names are used here (study start checks them); nothing loads a model.
    arms: { names: Object.keys(config.arms) } as PromptArms,
    logger: createLogger({ level: "silent" }),
    votes,
    studies,
    invocation: { platform: "discord", user: "admin", channel: "study-channel" },
  };
  // Votes outside any study (hand-checked below), one replaced, one retracted.
  await votes.saveGeneration(generation("gA1", "base"));
  await votes.saveGeneration(generation("gA2", "base"));
  await votes.saveGeneration(generation("gB1", "ft-tags"));
  const cast = (
    generationId: string,
    rater: string,
    dimension: "quality" | "faithfulness",
    score: number,
  ) => votes.castVote({ generationId, rater, dimension, score });
  await cast("gA1", "r1", "quality", 3);
  await cast("gA1", "r1", "faithfulness", 4);
  await cast("gA1", "r2", "quality", 2);
  await cast("gA1", "r2", "faithfulness", 4);
  await cast("gA2", "r1", "quality", 4);
  await cast("gA2", "r1", "faithfulness", 3);
  await cast("gA2", "r2", "quality", 3);
  await cast("gA2", "r2", "quality", 4); // replaces 3
  await cast("gA2", "r3", "faithfulness", 1);
  await votes.retractVote({
    generationId: "gA2",
    rater: "r3",
    dimension: "faithfulness",
    score: 1,
  });
  await cast("gB1", "r1", "quality", 1);
  await cast("gB1", "r1", "faithfulness", 2);
  await cast("gB1", "r2", "quality", 2);
  await cast("gB1", "r2", "faithfulness", 2);
  // A running live study in this channel, with one image and one vote.
  const started = await studyCommand.execute(context, {
    action: "start",
    name: "Blind",
    arms: ARMS.join(","),
  });
  studyId = (started.data as { id: string }).id;
  const assignment = must(await studies.assignArm("study-channel"));
  await votes.saveGeneration(generation("gS1", assignment.arm, assignment.studyId));
  await cast("gS1", "r1", "quality", 4);
});

describe("stats command", () => {
  it("gives Table 1 over every vote whose arm may be shown (hand-checked means)", async () => {
    const result = await statsCommand.execute(context, { format: "json" });
    const data = result.data as {
      summaries: { arm: string; dimension: string; n: number; mean: number; sd: number }[];
    };
    const cell = (arm: string, dimension: string) =>
      data.summaries.find((s) => s.arm === arm && s.dimension === dimension);
    expect(cell("base", "quality")).toMatchObject({ n: 4, mean: 3.25 }); // 3, 2, 4, 4 (3 replaced)
    expect(cell("base", "quality")?.sd).toBeCloseTo(Math.sqrt(2.75 / 3), 12);
    expect(cell("base", "faithfulness")?.mean).toBeCloseTo(11 / 3, 12); // 4, 4, 3 (1 retracted)
    expect(cell("ft-tags", "quality")).toMatchObject({ n: 2, mean: 1.5 });
    expect(cell("ft-tags", "faithfulness")).toMatchObject({ n: 2, mean: 2, sd: 0 });
    expect(JSON.parse(result.text)).toEqual(result.data);

    const table = await statsCommand.execute(context, {});
    expect(table.text).toContain("(1 votes of running studies left out)");
    expect(table.text).toMatch(/\nQ\s+3\.25 \(0\.96\)\s+1\.50 \(0\.71\)\n/);
    expect(table.text).toMatch(/\nF\s+3\.67 \(0\.58\)\s+2\.00 \(0\.00\)\n/);
    expect(table.files).toEqual([]);

    const csv = await statsCommand.execute(context, { format: "csv" });
    expect(csv.text.split("\n")[0]).toBe(
      "arm,dimension,n,mean,sd,ci_low,ci_high,ci_level,resamples,ci_unit",
    );
    expect(csv.text).toContain("\nbase,quality,4,3.25,");
  });

  it("attaches the chart PNG when asked", async () => {
    const result = await statsCommand.execute(context, { chart: true });
    const file = must(result.files[0]);
    expect(file).toMatchObject({ name: "means.png", contentType: "image/png" });
    expect(await sharp(file.content).metadata()).toMatchObject({
      format: "png",
      width: 800,
      height: 450,
    });
  });

  it("hides a running study's results, shows them after close", async () => {
    await expect(statsCommand.execute(context, { study: studyId })).rejects.toThrow(/hidden/);
    await expect(
      studyCommand.execute(context, { action: "results", study: studyId }),
    ).rejects.toThrow(/hidden/);
    await studyCommand.execute(context, { action: "stop", study: studyId });
    const results = await studyCommand.execute(context, {
      action: "results",
      study: studyId,
      format: "json",
    });
    const summaries = (results.data as { summaries: { n: number; mean: number }[] }).summaries;
    expect(summaries).toEqual([expect.objectContaining({ n: 1, mean: 4, dimension: "quality" })]);
    expect(results.files.map((f) => f.name)).toEqual(["means.png"]);
    const all = await statsCommand.execute(context, {});
    expect(all.text).not.toContain("left out");
    // The two-way bootstrap is one option away, and the table says which one ran.
    const table = await studyCommand.execute(context, { action: "results", study: studyId });
    expect(table.text).toContain("bootstrap over images");
    const twoWay = await studyCommand.execute(context, {
      action: "results",
      study: studyId,
      bootstrap: "images-raters",
    });
    expect(twoWay.text).toContain("two-way bootstrap over images and raters");
  });

  it("fails clearly without a vote store or study manager", async () => {
    const { votes: _v, studies: _s, ...bare } = context;
    await expect(statsCommand.execute(bare, {})).rejects.toThrow(/vote store/);
    await expect(studyCommand.execute(bare, { action: "status" })).rejects.toThrow(/study manager/);
    await expect(exportCommand.execute(bare, {})).rejects.toThrow(/vote store/);
  });

  it("declares every admin command adminOnly", () => {
    for (const command of [statsCommand, studyCommand, exportCommand])
      expect(command.adminOnly).toBe(true);
  });
});

describe("export command", () => {
  it("writes the current votes as CSV, with the arm empty for the running study", async () => {
    const result = await exportCommand.execute(context, {});
    const file = must(result.files[0]);
    expect(file.name).toBe("votes.csv");
    const lines = file.content.toString().trimEnd().split("\n");
    expect(lines[0]).toBe("generation_id,study_id,survey,arm,rater,dimension,score,at");
    expect(lines).toHaveLength(1 + 12);
    expect(lines).toContain("gA2,,,base,r2,quality,4,2025-01-01T00:00:07.000Z");
    expect(lines.some((l) => l.startsWith("gA2,,,base,r3,"))).toBe(false); // retracted
    expect(lines.find((l) => l.startsWith("gS1,"))).toBe(
      `gS1,${studyId},,,r1,quality,4,2025-01-01T00:00:14.000Z`,
    );
  });

  it("writes the event log and JSON lines; a study's export names only the study", async () => {
    const events = await exportCommand.execute(context, { what: "events", format: "csv" });
    const lines = must(events.files[0]).content.toString().trimEnd().split("\n");
    expect(lines[0]).toBe("at,kind,generation_id,study_id,survey,rater,dimension,score,previous");
    expect(lines).toHaveLength(1 + 15);
    expect(lines).toContain("2025-01-01T00:00:07.000Z,replace,gA2,,,r2,quality,4,3");
    const jsonl = await exportCommand.execute(context, { format: "jsonl", study: studyId });
    expect(jsonl.files[0]?.name).toBe(`votes-${studyId}.jsonl`);
    const rows = jsonl.files[0]?.content
      .toString()
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows).toEqual([expect.objectContaining({ generation_id: "gS1", arm: null, score: 4 })]);
  });
});

describe("the arm never appears in anything produced while a study runs", () => {
  it("status, start, export, stats, and their files", async () => {
    const assigned = must(await studies.get(studyId));
    const arm = must(await votes.getGeneration("gS1")).arm;
    const outputs = [
      await studyCommand.execute(context, { action: "status" }),
      await studyCommand.execute(context, { action: "status", study: studyId }),
      await exportCommand.execute(context, { study: studyId }),
      await exportCommand.execute(context, { what: "events", study: studyId }),
    ];
    for (const output of outputs) {
      const everything = [
        output.text,
        JSON.stringify(output.data),
        ...output.files.map((f) => f.name + f.content.toString()),
      ].join("\n");
      // The study's arms are listed as a set (admins chose them) but never tied to an image.
      // No image is tied to its arm: the export's arm column stays empty for gS1.
      expect(everything).not.toMatch(new RegExp(`gS1,[^,\\n]*,${arm}`));
      expect(everything).not.toMatch(new RegExp(`"gS1"[^\\n]*"${arm}"`));
      expect(everything).not.toContain(assigned.assignment?.secret);
    }
    const csv = outputs[2]?.files[0]?.content.toString();
    expect(csv).not.toContain(`,${arm},`);
    const stats = await statsCommand.execute(context, { format: "json" });
    expect(JSON.stringify(stats.data)).not.toContain("gS1");
  });
});

describe("command line", () => {
  function program(output: string[]) {
    const root = new Command("imagine-bot").exitOverride();
    registerStudyCommands(root, {
      openContext: async () => ({ ...context, close: async () => {} }),
      write: (text) => output.push(text),
    });
    return root;
  }

  it("study plan prints the paper's plan", async () => {
    const output: string[] = [];
    await program(output).parseAsync(
      [
        "study",
        "plan",
        "--concepts",
        "a,b,c,d,e,f,g,h,i,j",
        "--prompts",
        "5",
        "--arms",
        ARMS.join(","),
        "--surveys",
        "2",
        "--seed",
        "3",
        "--json",
      ],
      { from: "user" },
    );
    const plan = JSON.parse(output.join(""));
    expect(plan.items).toHaveLength(150);
    const text: string[] = [];
    await program(text).parseAsync(
      ["study", "plan", "--concepts", "a,b", "--arms", "x,y", "--seed", "3"],
      { from: "user" },
    );
    expect(text.join("")).toMatch(/## survey 1: 10 items \(x 5, y 5\)/);
  });

  it("stats --chart FILE writes the PNG; study stop/results; export --out", async () => {
    const output: string[] = [];
    const chart = join(dataDir, "chart.png");
    await program(output).parseAsync(["stats", "--chart", chart], { from: "user" });
    expect(output.join("")).toMatch(/\nQ\s+3\.25 \(0\.96\)/);
    expect((await sharp(readFileSync(chart)).metadata()).width).toBe(800);
    await program(output).parseAsync(["study", "stop", studyId], { from: "user" });
    const results: string[] = [];
    await program(results).parseAsync(["study", "results", studyId, "--format", "csv"], {
      from: "user",
    });
    expect(results.join("")).toMatch(/^arm,dimension,n,mean/);
    const out = join(dataDir, "votes.csv");
    await program(output).parseAsync(["export", "--out", out], { from: "user" });
    expect(readFileSync(out, "utf8").split("\n")[0]).toBe(
      "generation_id,study_id,survey,arm,rater,dimension,score,at",
    );
  });
});
