import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StudyManager } from "../../src/core/study/manager.js";
import { makeStudyPlan, type PlanItem } from "../../src/core/study/plan.js";
import { type PlanProgress, runStudyPlan } from "../../src/core/study/runner.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "imagine-runner-"));
  dirs.push(dir);
  return dir;
};

const plan = makeStudyPlan({
  concepts: ["a cat", "a dog", "a fox"],
  promptsPerConcept: 2,
  arms: ["base", "ft-tags"],
  surveys: 2,
  seed: 11,
});

/** A fake clock: sleep advances it, posting takes `postMs`. */
function fakeTime(postMs = 0) {
  let now = 0;
  const sleeps: number[] = [];
  const starts: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    post: async () => {
      starts.push(now);
      now += postMs;
    },
    sleeps,
    starts,
  };
}

describe("runStudyPlan", () => {
  it("posts every item in order, start to start at the injected interval", async () => {
    const time = fakeTime(400);
    const posted: string[] = [];
    const progress: PlanProgress[] = [];
    const result = await runStudyPlan({
      items: plan.items,
      posted: [],
      post: async (item) => {
        posted.push(item.id);
        await time.post();
      },
      markPosted: async () => {},
      intervalMs: 1000,
      sleep: time.sleep,
      now: time.now,
      onProgress: (p) => progress.push(p),
    });
    expect(result).toEqual({ postedNow: 12, posted: 12, total: 12, complete: true });
    expect(posted).toEqual(plan.items.map((i) => i.id));
    expect(time.starts).toEqual(Array.from({ length: 12 }, (_, i) => i * 1000));
    expect(time.sleeps).toEqual(Array(11).fill(600));
    expect(progress.at(-1)).toEqual({ posted: 12, total: 12, itemId: plan.items[11]?.id });
    // Progress never carries the arm.
    for (const p of progress) expect(Object.keys(p).sort()).toEqual(["itemId", "posted", "total"]);
  });

  it("resumes after an interruption without posting anything twice", async () => {
    const dataDir = tempDir();
    const manager = new StudyManager({ dataDir });
    const record = await manager.start({ mode: "batch", name: "paper", arms: plan.arms, plan });
    const posts: PlanItem[] = [];
    const time = fakeTime();
    let failAt = 5;
    const post = async (item: PlanItem, studyId: string) => {
      expect(studyId).toBe(record.id);
      if (posts.length === failAt) throw new Error("network down");
      posts.push(item);
    };
    await expect(
      manager.runBatch(record.id, { post, intervalMs: 50, sleep: time.sleep, now: time.now }),
    ).rejects.toThrow("network down");
    expect(posts).toHaveLength(5);
    expect((await manager.get(record.id))?.posted).toEqual(posts.map((i) => i.id));

    // A new process (a fresh manager on the same files) carries on from item 6.
    failAt = Number.POSITIVE_INFINITY;
    const again = new StudyManager({ dataDir });
    const result = await again.runBatch(record.id, {
      post,
      intervalMs: 50,
      sleep: time.sleep,
      now: time.now,
    });
    expect(result).toMatchObject({ postedNow: 7, posted: 12, complete: true });
    expect(posts.map((i) => i.id)).toEqual(plan.items.map((i) => i.id));
    expect(new Set(posts.map((i) => i.id)).size).toBe(12);
    // Running it once more posts nothing.
    const none = await again.runBatch(record.id, {
      post,
      intervalMs: 50,
      sleep: time.sleep,
      now: time.now,
    });
    expect(none.postedNow).toBe(0);
  });

  it("stops between items when the study is closed", async () => {
    const manager = new StudyManager({ dataDir: tempDir() });
    const record = await manager.start({ mode: "batch", name: "stopped", arms: plan.arms, plan });
    let count = 0;
    const result = await manager.runBatch(record.id, {
      post: async () => {
        count++;
        if (count === 3) await manager.stop(record.id);
      },
      intervalMs: 0,
    });
    expect(result.complete).toBe(false);
    expect(result.postedNow).toBe(3);
    await expect(
      manager.runBatch(record.id, { post: async () => {}, intervalMs: 0 }),
    ).rejects.toThrow(/closed/);
  });

  it("posts in the background with a configured poster, and resumes after a restart", async () => {
    const dataDir = tempDir();
    const seen: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const first = new StudyManager({
      dataDir,
      poster: {
        intervalMs: 0,
        post: async (item) => {
          if (seen.length === 4) await gate;
          seen.push(item.id);
        },
      },
    });
    const record = await first.start({ mode: "batch", name: "bg", arms: plan.arms, plan });
    expect(await first.startPosting(record.id)).toBe(true);
    expect(await first.startPosting(record.id)).toBe(false); // already posting
    while (seen.length < 4) await new Promise((r) => setTimeout(r, 1));
    const closing = first.close();
    release();
    await closing;
    const postedBefore = (await first.get(record.id))?.posted ?? [];
    expect(postedBefore.length).toBeGreaterThanOrEqual(4);
    expect(postedBefore.length).toBeLessThan(12);

    const second = new StudyManager({
      dataDir,
      poster: { intervalMs: 0, post: async (item) => void seen.push(item.id) },
    });
    expect(await second.resumePosting()).toEqual([record.id]);
    await vitestWaitFor(async () => (await second.get(record.id))?.posted?.length === 12);
    await second.close();
    expect(seen).toEqual(plan.items.map((i) => i.id));
  });
});

async function vitestWaitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error("timed out");
}
