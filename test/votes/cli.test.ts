/** `imagine-bot votes export` as a user runs it, against a SQLite store seeded here. */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeStudyPlan } from "../../src/core/study/plan.js";
import { StudyFiles } from "../../src/core/study/record.js";
import { openVoteStore } from "../../src/core/votes/index.js";
import { sampleGeneration } from "./contract.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const dataDir = mkdtempSync(join(tmpdir(), "imagine-votes-cli-"));
const env = { IMAGINE_DATA_DIR: dataDir, IMAGINE_VOTE_STORE: "sqlite://votes.sqlite" };

async function cli(args: string[], extraEnv: Record<string, string> = env) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", resolve(ROOT, "src/adapters/cli/main.ts"), ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", IMAGINE_LOG_LEVEL: "silent", ...extraEnv },
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const study = sampleGeneration({ id: "gen-study", studyId: "s1", arm: "base" });
const other = sampleGeneration({ id: "gen-other" });
// A closed batch study: its image's survey comes from the plan item, and its arm is shown.
const plan = makeStudyPlan({
  concepts: ["a fox"],
  promptsPerConcept: 1,
  arms: ["base", "ft-tags"],
  surveys: 2,
  seed: 3,
});
const batchItem = plan.items.find((item) => item.arm === "ft-tags");
if (batchItem === undefined) throw new Error("the plan has no ft-tags item");
const batchSurvey = String(batchItem.survey);
const closed = sampleGeneration({
  id: "gen-closed",
  studyId: "closed-1",
  studyItem: batchItem.id,
  arm: "ft-tags",
});

beforeAll(async () => {
  await new StudyFiles(dataDir).write({
    version: 1,
    id: "closed-1",
    name: "closed",
    mode: "batch",
    arms: ["base", "ft-tags"],
    channels: [],
    status: "closed",
    createdAt: "2025-01-01T00:00:00.000Z",
    closedAt: "2025-01-02T00:00:00.000Z",
    plan,
    posted: plan.items.map((item) => item.id),
  });
  const store = await openVoteStore("sqlite://votes.sqlite", { dataDir });
  await store.saveGeneration(study);
  await store.saveGeneration(other);
  await store.saveGeneration(closed);
  await store.castVote({
    generationId: study.id,
    rater: "discord:1",
    dimension: "quality",
    score: 2,
  });
  await store.castVote({
    generationId: study.id,
    rater: "discord:1",
    dimension: "quality",
    score: 3,
  });
  await store.castVote({
    generationId: study.id,
    rater: 'slack:U1,"x"',
    dimension: "faithfulness",
    score: 4,
  });
  await store.castVote({
    generationId: other.id,
    rater: "discord:2",
    dimension: "quality",
    score: 1,
  });
  await store.castVote({
    generationId: other.id,
    rater: "discord:3",
    dimension: "quality",
    score: 4,
  });
  await store.retractVote({
    generationId: other.id,
    rater: "discord:3",
    dimension: "quality",
    score: 4,
  });
  await store.castVote({
    generationId: closed.id,
    rater: "discord:4",
    dimension: "quality",
    score: 2,
  });
  await store.close();
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("imagine-bot votes export", () => {
  it("prints the current votes as CSV with study, survey, and the arm only once closed", async () => {
    const { code, stdout, stderr } = await cli(["votes", "export"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toBe("generation_id,study_id,survey,arm,rater,dimension,score,at");
    expect(
      lines
        .slice(1)
        .map((line) => line.replace(/,[^,]+$/, ""))
        .sort(),
    ).toEqual(
      [
        "gen-other,,,ft-tags,discord:2,quality,1",
        // s1 has no closed record: its arm stays hidden.
        "gen-study,s1,,,discord:1,quality,3",
        'gen-study,s1,,,"slack:U1,""x""",faithfulness,4',
        `gen-closed,closed-1,${batchSurvey},ft-tags,discord:4,quality,2`,
      ].sort(),
    );
    for (const line of lines.slice(1)) expect(line).toMatch(/,\d{4}-\d\d-\d\dT[\d:.]+Z$/);
  });

  it("limits to one study and prints JSON lines", async () => {
    const { code, stdout } = await cli(["votes", "export", "--study", "s1", "--format", "jsonl"]);
    expect(code).toBe(0);
    const rows = stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(rows).toHaveLength(2);
    expect(rows.every((row) => row.generation_id === "gen-study")).toBe(true);
    expect(Object.keys(rows[0])).toEqual([
      "generation_id",
      "study_id",
      "survey",
      "arm",
      "rater",
      "dimension",
      "score",
      "at",
    ]);
    expect(rows.every((row) => row.arm === null && row.study_id === "s1")).toBe(true);
    expect(stdout).not.toMatch(/base/);
  });

  it("prints the event log oldest first with --events", async () => {
    const { code, stdout } = await cli(["votes", "export", "--events"]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toBe("at,kind,generation_id,study_id,survey,rater,dimension,score,previous");
    expect(lines.slice(1).map((line) => line.split(",").slice(1, 3).join(","))).toEqual([
      "add,gen-study",
      "replace,gen-study",
      "add,gen-study",
      "add,gen-other",
      "add,gen-other",
      "retract,gen-other",
      "add,gen-closed",
    ]);
    expect(lines[2]).toMatch(/,replace,gen-study,s1,,discord:1,quality,3,2$/);
    expect(lines[7]).toMatch(
      new RegExp(`,add,gen-closed,closed-1,${batchSurvey},discord:4,quality,2,$`),
    );
    const study = await cli(["votes", "export", "--events", "--study", "s1", "--format", "jsonl"]);
    expect(
      study.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).kind),
    ).toEqual(["add", "replace", "add"]);
  });

  it("prints only the header for an empty store", async () => {
    const empty = mkdtempSync(join(tmpdir(), "imagine-votes-empty-"));
    const { code, stdout } = await cli(["votes", "export"], { ...env, IMAGINE_DATA_DIR: empty });
    rmSync(empty, { recursive: true, force: true });
    expect(code).toBe(0);
    expect(stdout).toBe("generation_id,study_id,survey,arm,rater,dimension,score,at\n");
  });

  it.each([
    [["votes", "export", "--format", "xml"], /Allowed choices are csv, jsonl/],
    [["votes", "export"], /IMAGINE_VOTE_STORE/, { ...env, IMAGINE_VOTE_STORE: "mysql://x" }],
  ])("exits 2 with a clear message for %j", async (args, message, extraEnv = env) => {
    const { code, stderr, stdout } = await cli(args, extraEnv);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stdout).toBe("");
  });
});
