/**
 * ChatFlow.publishResumed: a chat process restarted mid-job answers, through the reply handle the
 * killed process left in the job, with the images (replacing the progress line, remembered for
 * votes, given the voting reactions) or the failure; once the platform refuses the handle (its
 * window closed) it returns undefined so that the caller posts in the channel instead.
 */
import { describe, expect, it } from "vitest";
import { ChatFlow, type ChatServices } from "../../src/adapters/chat/index.js";
import type {
  ChatPlatform,
  Conversation,
  ImageMessage,
  PostedMessage,
} from "../../src/adapters/chat/platform.js";
import { BotError, UserError } from "../../src/core/errors.js";
import { createLogger } from "../../src/core/logger.js";
import { type ImagineResult, recoveredFailure } from "../../src/core/pipeline.js";
import { testConfig } from "../helpers/config.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { sampleGeneration } from "../votes/contract.js";

function recording() {
  const calls: [string, unknown][] = [];
  const conversation: Conversation = {
    begin: async () => {},
    status: async (text) => void calls.push(["status", text]),
    refuse: async (text) => void calls.push(["refuse", text]),
    whisper: async (text) => void calls.push(["whisper", text]),
    fail: async (text) => void calls.push(["fail", text]),
    postImage: async (message: ImageMessage, index: number): Promise<PostedMessage> => {
      calls.push(["image", { index, requester: message.requester }]);
      return { channel: "c", id: `m${index}`, ref: `c/m${index}` };
    },
    prompts: async () => {},
    report: async () => {},
  };
  return { calls, conversation };
}

async function flowWith(conversation: Conversation, extra: Partial<ChatPlatform> = {}) {
  const reactions: string[] = [];
  const platform: ChatPlatform = {
    name: "discord",
    emoji: testConfig().votes.discordEmoji,
    channels: undefined,
    admins: "admins",
    botUserId: () => "bot",
    commandLabel: (name) => `/${name}`,
    postImage: async () => ({ channel: "c", id: "x", ref: "c/x" }),
    addReaction: async (message, emoji) => void reactions.push(`${message.ref} ${emoji}`),
    removeReaction: async () => false,
    listReactions: async () => undefined,
    messageOfRef: () => undefined,
    resumeConversation: (handle) => (handle === "open" ? conversation : undefined),
    ...extra,
  };
  const votes = await memoryVoteStore();
  const services = {
    config: testConfig(),
    logger: createLogger({ level: "silent" }),
    votes,
    commands: [],
  } as unknown as ChatServices;
  return { flow: new ChatFlow(platform, services), votes, reactions };
}

describe("ChatFlow.publishResumed", () => {
  it("posts the images through the resumed reply, remembered and with the voting reactions", async () => {
    const { calls, conversation } = recording();
    const { flow, votes, reactions } = await flowWith(conversation);
    const generation = sampleGeneration();
    await votes.saveGeneration(generation);
    const result: ImagineResult = {
      subject: generation.subject,
      seed: 1,
      generations: [{ generation, png: Buffer.from("png"), path: "images/a.png" }],
      refused: [],
      timings: { queuedMs: 0, promptMs: 0, renderMs: 0, saveMs: 0, totalMs: 0 },
    };
    const posted = await flow.publishResumed("open", { result }, "123");
    expect(posted?.map((m) => m.ref)).toEqual(["c/m0"]);
    expect(calls).toEqual([["image", { index: 0, requester: "123" }]]);
    expect((await votes.findGenerationByMessage("discord", "c/m0"))?.id).toBe(generation.id);
    expect(reactions).toHaveLength(8);
  });

  it("replaces the reply with the failure, a refusal included", async () => {
    const { calls, conversation } = recording();
    const { flow } = await flowWith(conversation);
    const refusal = new UserError("PROMPT_EXPLICIT", "Every prompt was blocked.");
    expect(await flow.publishResumed("open", { error: refusal }, "123")).toEqual([]);
    expect(calls).toEqual([["fail", "Every prompt was blocked."]]);
  });

  it("posts in the channel only the images an earlier, killed process had not posted", async () => {
    const { conversation } = recording();
    const { flow, votes } = await flowWith(conversation);
    const posted = sampleGeneration();
    const missing = sampleGeneration({ id: "gen-missing", subject: "a second subject" });
    await votes.saveGeneration(posted);
    await votes.saveGeneration(missing);
    // The killed process posted the first image and remembered its message, then died.
    await votes.setMessageRef(posted.id, "c/earlier");
    const image = (generation: typeof posted) => ({
      generation,
      png: Buffer.from("png"),
      path: `images/${generation.id}.png`,
    });
    const result: ImagineResult = {
      subject: posted.subject,
      seed: 1,
      generations: [image(posted), image(missing)],
      refused: [],
      timings: { queuedMs: 0, promptMs: 0, renderMs: 0, saveMs: 0, totalMs: 0 },
    };
    const messages = await flow.publishResult("c", result);
    expect(messages.map((m) => m.ref)).toEqual(["c/x"]);
    expect((await votes.findGenerationByMessage("discord", "c/x"))?.id).toBe("gen-missing");
    expect((await votes.getGeneration(posted.id))?.messageRef).toBe("c/earlier");
  });

  it("edits the reply again but skips follow-up images an earlier, killed process had posted", async () => {
    const { calls, conversation } = recording();
    const { flow, votes } = await flowWith(conversation);
    const generations = ["first", "second", "third"].map((id) => sampleGeneration({ id }));
    for (const generation of generations) await votes.saveGeneration(generation);
    // The killed process edited its reply with the first image and followed up with the second.
    await votes.setMessageRef("first", "c/original");
    await votes.setMessageRef("second", "c/follow-up");
    const result: ImagineResult = {
      subject: "a subject",
      seed: 1,
      generations: generations.map((generation) => ({
        generation,
        png: Buffer.from("png"),
        path: `images/${generation.id}.png`,
      })),
      refused: [],
      timings: { queuedMs: 0, promptMs: 0, renderMs: 0, saveMs: 0, totalMs: 0 },
    };
    const posted = await flow.publishResumed("open", { result }, "123");
    expect(calls).toEqual([
      ["image", { index: 0, requester: "123" }],
      ["image", { index: 2, requester: "123" }],
    ]);
    expect(posted?.map((m) => m.ref)).toEqual(["c/m0", "c/m2"]);
  });

  it("posts a failure in the channel as the public failure line", async () => {
    const { conversation } = recording();
    const texts: string[] = [];
    const { flow } = await flowWith(conversation, {
      postText: async (channel, text) => {
        texts.push(text);
        return { channel, id: "f", ref: `${channel}/f` };
      },
    });
    const error = recoveredFailure(new BotError("GENERATION_FAILED", "HTTP 500"), "abcd1234");
    expect((await flow.publishFailure("c", error))?.ref).toBe("c/f");
    const refusal = recoveredFailure(
      new UserError("PROMPT_EXPLICIT", "Every prompt was blocked."),
      "feed0001",
    );
    await flow.publishFailure("c", refusal);
    expect(texts).toEqual([
      "Sorry, that failed: Something went wrong while making the image. (reference abcd1234)",
      "Sorry, that failed: Every prompt was blocked. (reference feed0001)",
    ]);
  });

  it("returns undefined when the platform no longer takes the handle", async () => {
    const { calls, conversation } = recording();
    const { flow } = await flowWith(conversation);
    const error = new UserError("PROMPT_EXPLICIT", "blocked");
    expect(await flow.publishResumed("expired", { error }, "123")).toBeUndefined();
    expect(calls).toEqual([]);
  });
});
