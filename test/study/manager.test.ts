import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StudyManager } from "../../src/core/study/manager.js";
import { publicStudy } from "../../src/core/study/record.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { generation, must } from "./fixtures.js";

const ARMS = ["base", "ft-no-tags", "ft-tags"];
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "imagine-study-"));
  dirs.push(dir);
  return dir;
};

function spread(counts: Map<string, number>): number {
  const values = ARMS.map((arm) => counts.get(arm) ?? 0);
  return Math.max(...values) - Math.min(...values);
}

describe("StudyManager, live studies", () => {
  it("assigns arms only in the study's channels, balanced at every step, across restarts", async () => {
    const dataDir = tempDir();
    let manager = new StudyManager({ dataDir });
    const record = await manager.start({
      mode: "live",
      name: "Live one",
      arms: ARMS,
      channels: ["c1", "c2"],
    });
    expect(record.id).toMatch(/^live-one-[0-9a-f]{8}$/);
    expect(await manager.assignArm("elsewhere")).toBeUndefined();
    expect(await manager.assignArm(undefined)).toBeUndefined();
    const counts = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      if (i % 17 === 0) manager = new StudyManager({ dataDir }); // a restart
      const assignment = await manager.assignArm(i % 2 ? "c1" : "c2");
      expect(assignment?.studyId).toBe(record.id);
      const arm = assignment?.arm as string;
      counts.set(arm, (counts.get(arm) ?? 0) + 1);
      expect(spread(counts)).toBeLessThanOrEqual(1);
    }
    expect(publicStudy(must(await manager.get(record.id))).images).toBe(100);
  });

  it("stays balanced when many /imagine requests arrive at once", async () => {
    const manager = new StudyManager({ dataDir: tempDir() });
    await manager.start({ mode: "live", name: "burst", arms: ARMS, channels: ["c"] });
    const assignments = await Promise.all(Array.from({ length: 60 }, () => manager.assignArm("c")));
    const counts = new Map<string, number>();
    for (const a of assignments) {
      const arm = must(a).arm;
      counts.set(arm, (counts.get(arm) ?? 0) + 1);
    }
    expect(ARMS.map((arm) => counts.get(arm))).toEqual([20, 20, 20]);
  });

  it("ends assignment when stopped, and refuses a channel already in a running study", async () => {
    const manager = new StudyManager({ dataDir: tempDir() });
    const first = await manager.start({ mode: "live", name: "a", arms: ARMS, channels: ["c"] });
    await expect(
      manager.start({ mode: "live", name: "b", arms: ARMS, channels: ["d", "c"] }),
    ).rejects.toThrow(/already in running study/);
    await manager.stop(first.id);
    expect(await manager.assignArm("c")).toBeUndefined();
    await manager.start({ mode: "live", name: "b", arms: ARMS, channels: ["c"] });
    expect(await manager.assignArm("c")).toBeDefined();
  });

  it("validates what it is given", async () => {
    const manager = new StudyManager({ dataDir: tempDir() });
    await expect(
      manager.start({ mode: "live", name: "x", arms: ["base"], channels: ["c"] }),
    ).rejects.toThrow(/two arms/);
    await expect(
      manager.start({ mode: "live", name: "x", arms: ARMS, channels: [] }),
    ).rejects.toThrow(/channel/);
    await expect(manager.get("../etc/passwd")).rejects.toThrow(/not a study id/);
    await expect(manager.stop("nope-1234")).rejects.toThrow(/no study/);
  });

  it("writes the record atomically as JSON in <dataDir>/studies/<id>.json", async () => {
    const dataDir = tempDir();
    const manager = new StudyManager({ dataDir, now: () => new Date("2025-02-03T04:05:06Z") });
    const record = await manager.start({ mode: "live", name: "file", arms: ARMS, channels: ["c"] });
    await manager.assignArm("c");
    const closed = await manager.stop(record.id);
    expect(readdirSync(join(dataDir, "studies"))).toEqual([`${record.id}.json`]);
    const stored = JSON.parse(readFileSync(join(dataDir, "studies", `${record.id}.json`), "utf8"));
    expect(stored).toMatchObject({
      id: record.id,
      name: "file",
      mode: "live",
      arms: ARMS,
      channels: ["c"],
      status: "closed",
      createdAt: "2025-02-03T04:05:06.000Z",
      closedAt: "2025-02-03T04:05:06.000Z",
      assignment: { assigned: 1 },
    });
    expect(closed.status).toBe("closed");
  });
});

describe("results are hidden until the study closes", () => {
  it("refuses results while running, reveals the per-arm table after close", async () => {
    const manager = new StudyManager({ dataDir: tempDir() });
    const votes = await memoryVoteStore();
    const record = await manager.start({
      mode: "live",
      name: "reveal",
      arms: ARMS,
      channels: ["c"],
    });
    for (let i = 0; i < 30; i++) {
      const { arm, studyId } = must(await manager.assignArm("c"));
      await votes.saveGeneration(generation(`g${i}`, arm, studyId));
      await votes.castVote({
        generationId: `g${i}`,
        rater: "r1",
        dimension: "quality",
        score: arm === "ft-tags" ? 4 : 2,
      });
      await votes.castVote({
        generationId: `g${i}`,
        rater: "r2",
        dimension: "quality",
        score: arm === "ft-tags" ? 4 : 3,
      });
    }
    await expect(manager.results(record.id, votes)).rejects.toThrow(/still running.*hidden/);
    // Nothing shown while it runs names an arm per image or counts per arm.
    const view = JSON.stringify(publicStudy(must(await manager.get(record.id))));
    expect(view).not.toMatch(/secret|assignment|counts/);

    await manager.stop(record.id);
    const results = await manager.results(record.id, votes);
    expect(results.arms).toEqual(ARMS);
    const tags = results.summaries.find((s) => s.arm === "ft-tags" && s.dimension === "quality");
    expect(tags).toMatchObject({ n: 20, mean: 4 });
    const base = results.summaries.find((s) => s.arm === "base" && s.dimension === "quality");
    expect(base?.mean).toBe(2.5);
    expect(results.table).toMatch(
      /^\s+base\s+ft-no-tags\s+ft-tags\nQ\s+2\.50 \(0\.51\)\s+2\.50 \(0\.51\)\s+4\.00 \(0\.00\)\n$/,
    );
    expect(results.comparisons).toHaveLength(3);
    const vsTags = results.comparisons.find((c) => c.first === "base" && c.second === "ft-tags");
    expect(vsTags?.mannWhitney.p).toBeLessThan(0.001);
    expect(results.agreement.dimensions.quality?.n_raters).toBe(2);
  });
});
