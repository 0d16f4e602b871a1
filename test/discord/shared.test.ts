/** The platform-neutral pieces chat adapters share: options, replies, reactions. */
import { describe, expect, it } from "vitest";
import {
  CHAT_COMMANDS,
  chatOptions,
  parseChatOptions,
  snakeCase,
} from "../../src/adapters/chat/commands.js";
import { imageFileName, imageReplies, progressText } from "../../src/adapters/chat/replies.js";
import { reactionFor, reactionVote, votingReactions } from "../../src/adapters/chat/votes.js";
import { caption } from "../../src/adapters/discord/messages.js";
import { UserError } from "../../src/core/errors.js";
import type { ImagineResult } from "../../src/core/pipeline.js";
import type { Generation } from "../../src/core/types.js";
import { testConfig } from "../pipeline/fakes.js";

const scale = testConfig("/tmp").votes.discordEmoji;

function generation(overrides: Partial<Generation> = {}): Generation {
  return {
    id: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    createdAt: "2024-01-01T00:00:00.000Z",
    platform: "discord",
    requester: "u1",
    subject: "a lighthouse",
    arm: "ft-tags",
    prompt: "a lighthouse on a cliff at dusk, oil painting",
    promptComplete: true,
    seed: 42,
    image: {
      backend: "fake",
      model: "m",
      width: 8,
      height: 8,
      steps: 1,
      guidance: 1,
      path: "images/x.png",
    },
    timings: { queuedMs: 0, promptMs: 0, renderMs: 0, totalMs: 0 },
    ...overrides,
  };
}

function result(g: Generation): ImagineResult {
  return {
    subject: g.subject,
    seed: g.seed,
    generations: [{ generation: g, png: Buffer.from("png"), path: g.image.path }],
    refused: [],
    timings: { queuedMs: 0, promptMs: 0, renderMs: 0, saveMs: 0, totalMs: 0 },
  };
}

describe("replies", () => {
  it("shows subject, prompt, seed and legend, never the arm", () => {
    const [image] = imageReplies(result(generation()));
    if (!image) throw new Error("no image");
    expect(image.fileName).toBe("imagine-0f1e2d3c.png");
    expect(image.altText).toBe("a lighthouse");
    const text = caption({ image, votable: true, notes: [] }, scale);
    expect(text).toBe(
      "**a lighthouse**\nPrompt: a lighthouse on a cliff at dusk, oil painting\nSeed: 42\nRate: 1️⃣–4️⃣ quality · 🔴🟠🟡🟢 faithfulness",
    );
    expect(text).not.toContain("ft-tags");
  });

  it("hides the prompt while a blind study runs", () => {
    const [image] = imageReplies(result(generation({ studyId: "s1" })));
    if (!image) throw new Error("no image");
    expect(image.prompt).toBeUndefined();
    expect(caption({ image, votable: true, notes: [] }, scale)).not.toContain("Prompt");
  });

  it("names files by id only and describes progress", () => {
    expect(imageFileName({ id: "ABCDEF01-2345" })).toBe("imagine-abcdef01.png");
    expect(progressText({ kind: "queued", position: 3 })).toBe("Queued (position 3)…");
    expect(progressText({ kind: "writing-prompt" })).toBe("Writing the prompt…");
    expect(progressText({ kind: "rendering", index: 1, of: 1 })).toBe("Rendering…");
    expect(progressText({ kind: "rendering", index: 2, of: 3 })).toBe("Rendering image 2 of 3…");
    // Backends that run the denoising steps themselves (local) report each one.
    expect(progressText({ kind: "rendering", index: 1, of: 1, step: 3, steps: 4 })).toBe(
      "Rendering 3/4…",
    );
    expect(progressText({ kind: "rendering", index: 2, of: 3, step: 1, steps: 4 })).toBe(
      "Rendering image 2 of 3 (step 1/4)…",
    );
    expect(progressText({ kind: "done" })).toBeUndefined();
  });
});

describe("reactions", () => {
  it("maps the configured emoji to scores, with or without the variation selector", () => {
    expect(votingReactions(scale)).toEqual(["1️⃣", "2️⃣", "3️⃣", "4️⃣", "🔴", "🟠", "🟡", "🟢"]);
    expect(reactionVote("3️⃣", scale)).toEqual({ dimension: "quality", score: 3 });
    expect(reactionVote("3\u20e3", scale)).toEqual({ dimension: "quality", score: 3 });
    expect(reactionVote("🟠", scale)).toEqual({ dimension: "faithfulness", score: 2 });
    expect(reactionVote("😀", scale)).toBeUndefined();
    expect(reactionFor("faithfulness", 4, scale)).toBe("🟢");
  });
});

describe("chat options from zod declarations", () => {
  it("offers every option but the CLI-only model directory, in snake_case, required first", () => {
    const prompt = CHAT_COMMANDS.find((c) => c.name === "prompt");
    if (!prompt) throw new Error("no prompt command");
    const options = chatOptions(prompt, { maxSubjectLength: 120 });
    expect(options.map((o) => [o.name, o.type, o.required])).toEqual([
      ["subject", "string", true],
      ["count", "integer", false],
      ["arm", "string", false],
      ["seed", "integer", false],
      ["max_new_tokens", "integer", false],
    ]);
    expect(options[0]?.maxLength).toBe(120);
    expect(snakeCase("maxNewTokens")).toBe("max_new_tokens");
    expect(
      parseChatOptions(prompt, { subject: "x", max_new_tokens: 5, model_dir: "/etc" }),
    ).toEqual({
      subject: "x",
      maxNewTokens: 5,
    });
    expect(() => parseChatOptions(prompt, { subject: "x", count: 99 })).toThrow(UserError);
  });
});
