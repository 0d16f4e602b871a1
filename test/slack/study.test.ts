/**
 * Batch studies posted in a Slack channel (chat/studyPoster.ts): each plan item is a new bot
 * message (files upload, then chat.postMessage with the image block), blind (no prompt, no arm),
 * followed by the eight voting reactions; a reaction on it is a vote on the study's generation.
 * Nothing sleeps: waits are on the fake's recorded calls.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { studyPoster } from "../../src/adapters/chat/studyPoster.js";
import { votingReactions } from "../../src/adapters/chat/votes.js";
import { createLogger } from "../../src/core/logger.js";
import { StudyManager } from "../../src/core/study/manager.js";
import { makeStudyPlan } from "../../src/core/study/plan.js";
import { TINY_MODEL_DIR } from "../helpers/config.js";
import { type Harness, sendReaction, startHarness } from "./harness.js";

const ARMS = ["ft-tags", "baseline"];
const CHANNEL = "C0STUDY01";

let h: Harness;
let studies: StudyManager;

beforeAll(async () => {
  h = await startHarness({
    arms: Object.fromEntries(ARMS.map((arm) => [arm, { kind: "onnx", modelDir: TINY_MODEL_DIR }])),
  });
  const logger = createLogger({ level: "silent" });
  studies = new StudyManager({ dataDir: h.dataDir, logger });
  studies.setPoster(studyPoster([h.adapter], { pipeline: h.pipeline, logger }, { intervalMs: 0 }));
});

afterAll(async () => {
  await studies?.close();
  await h?.close();
});

describe("batch study in a Slack channel", () => {
  it("posts every item as a new message with the image and 8 reactions, blind, and counts votes", async () => {
    const { fake } = h;
    const plan = makeStudyPlan({
      concepts: ["a lighthouse", "a teapot"],
      arms: ARMS,
      promptsPerConcept: 1,
      surveys: 1,
      seed: 7,
    });
    const study = await studies.start({
      mode: "batch",
      name: "pilot",
      arms: ARMS,
      plan,
      channels: [CHANNEL],
    });
    expect(h.adapter.ownsChannel(CHANNEL)).toBe(true);
    expect(h.adapter.ownsChannel("1200000000000000003")).toBe(false);
    expect(await studies.startPosting(study.id)).toBe(true);

    const total = plan.items.length;
    const emoji = votingReactions(h.config.votes.slackEmoji);
    await fake.waitFor((f) => f.callsOf("reactions.add").length === total * emoji.length);
    await studies.close();
    expect((await studies.require(study.id)).posted).toHaveLength(total);

    const posts = fake.callsOf("chat.postMessage");
    expect(posts).toHaveLength(total);
    expect(fake.callsOf("chat.update")).toHaveLength(0);
    const generations = await Promise.all(
      posts.map(async (post, i) => {
        expect(post.params.channel).toBe(CHANNEL);
        const ts = fake.calls
          .filter((c) => c.method === "reactions.add")
          .slice(i * emoji.length, (i + 1) * emoji.length);
        expect(ts.map((c) => c.params.name)).toEqual(emoji);
        const timestamp = ts[0]?.params.timestamp as string;
        expect(ts.every((c) => c.params.timestamp === timestamp)).toBe(true);
        const generation = await h.votes.findGenerationByMessage(
          "slack",
          `${CHANNEL}:${timestamp}`,
        );
        if (!generation) throw new Error(`no generation for message ${i}`);
        return { post, generation, timestamp };
      }),
    );

    const prompts = generations.map((g) => g.generation.prompt);
    const uploads = [
      ...fake.callsOf("files.getUploadURLExternal"),
      ...fake.callsOf("files.completeUploadExternal"),
    ].map((c) => JSON.stringify(c.params));
    for (const { post, generation } of generations) {
      expect(generation.studyId).toBe(study.id);
      expect(generation.requester).toBe(`study:${study.id}`);
      const shown = `${String(post.params.text)} ${JSON.stringify(post.params.blocks)}`;
      expect(shown).toContain(generation.subject);
      // The survey and position, never the seed: matched images of one slot share it.
      expect(shown).toMatch(/Survey \d+ · image \d+/);
      expect(shown).not.toMatch(/seed/i);
      expect(shown).toContain("hidden while the blind study runs");
      expect(shown).not.toContain("asked by");
      for (const visible of [shown, ...uploads]) {
        for (const arm of ARMS) expect(visible).not.toContain(arm);
        for (const prompt of prompts) expect(visible).not.toContain(prompt);
      }
    }
    const made = generations.map((g) => `${g.generation.subject}/${g.generation.arm}`).sort();
    expect(made).toEqual(plan.items.map((i) => `${i.concept}/${i.arm}`).sort());

    const target = generations[0];
    if (!target) throw new Error("nothing posted");
    const vote = await sendReaction(h, {
      eventId: "EvStudy1",
      user: "U0RATER",
      reaction: "two",
      channel: CHANNEL,
      ts: target.timestamp,
    });
    expect(vote.report.outcome.kind).toBe("cast");
    expect(await h.votes.votesOf(target.generation.id)).toMatchObject([
      { rater: "slack:U0RATER", dimension: "quality", score: 2 },
    ]);
  });
});
