/**
 * The chat flow on its own, with an in-memory platform: what no fake platform can stage in
 * reasonable time (the deadline watchdog), and the flow's own bookkeeping (dedupe of redelivered
 * events, a renderer per result kind, a crashing platform, reconciliation runs).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import type { ReconcileReport } from "../../src/adapters/chat/flow.js";
import { ChatFlow, type ChatServices } from "../../src/adapters/chat/index.js";
import type {
  ChatPlatform,
  CommandEvent,
  Conversation,
  ImageMessage,
  PostedMessage,
} from "../../src/adapters/chat/platform.js";
import type { Command, PromptsResult, ReportResult } from "../../src/commands/command.js";
import { createLogger } from "../../src/core/logger.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { testConfig } from "../helpers/config.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { seedPosted } from "./visible.js";

/** Records every call of one command's conversation. */
class RecordingConversation implements Conversation {
  readonly calls: [string, unknown][] = [];
  failOn: string | undefined;
  private record(name: string, value: unknown): void {
    this.calls.push([name, value]);
    if (this.failOn === name) throw new Error(`${name} failed on the platform`);
  }
  async begin() {
    this.record("begin", undefined);
  }
  async status(text: string) {
    this.record("status", text);
  }
  async refuse(text: string) {
    this.record("refuse", text);
  }
  async whisper(text: string) {
    this.record("whisper", text);
  }
  async fail(text: string) {
    this.record("fail", text);
  }
  async postImage(_message: ImageMessage, index: number): Promise<PostedMessage> {
    this.record("image", index);
    return { channel: "c", id: `m${index}`, ref: `c/m${index}` };
  }
  async prompts(result: PromptsResult) {
    this.record("prompts", result.subject);
  }
  async report(result: ReportResult) {
    this.record("report", result.text);
  }
}

const platform: ChatPlatform = {
  name: "discord",
  emoji: testConfig().votes.discordEmoji,
  channels: undefined,
  admins: "admins",
  botUserId: () => "bot",
  commandLabel: (name) => `/${name}`,
  postImage: async () => ({ channel: "c", id: "m", ref: "c/m" }),
  addReaction: async () => {},
  removeReaction: async () => false,
  listReactions: async () => undefined,
  messageOfRef: (ref) => {
    const [channel, id] = ref.split("/");
    return channel && id ? { channel, id, ref } : undefined;
  },
};

function command<Result extends ReportResult | PromptsResult>(
  name: string,
  execute: () => Promise<Result>,
): Command<z.ZodObject, Result> {
  return { name, description: name, options: z.object({}), execute };
}

function flowWith(commands: ChatServices["commands"], deadlineMs = 30_000): ChatFlow {
  const config = testConfig({ queue: { deadlineMs } });
  const logger = createLogger({ level: "silent" });
  const services = {
    config,
    logger,
    arms: new PromptArms(config, {}, logger),
    commands,
  } as unknown as ChatServices;
  return new ChatFlow(platform, services);
}

function event(name: string, conversation: Conversation): CommandEvent {
  return {
    id: `i-${name}`,
    command: name,
    options: {},
    user: "u1",
    channel: "c",
    isAdmin: async () => false,
    conversation,
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("chat flow", () => {
  it("fails a command that outlives the deadline, publicly, with a reference", async () => {
    vi.useFakeTimers();
    const stuck = command("stuck", () => new Promise<ReportResult>(() => {}));
    const flow = flowWith([stuck], 2_000);
    const conversation = new RecordingConversation();
    const done = flow.processCommand(event("stuck", conversation));
    await vi.advanceTimersByTimeAsync(1_500);
    expect(conversation.calls).toEqual([["begin", undefined]]);
    await vi.advanceTimersByTimeAsync(1_500);
    const report = await done;
    expect(report).toMatchObject({
      outcome: "failed",
      reference: expect.stringMatching(/^[0-9a-f]{8}$/),
    });
    expect(conversation.calls.at(-1)).toEqual([
      "fail",
      `Sorry, that failed: The command did not finish in time, so it was cancelled. (reference ${report.reference})`,
    ]);
  });

  it("renders each result kind with its own renderer, and refuses unknown commands", async () => {
    const flow = flowWith([
      command("words", async () => ({
        kind: "prompts",
        subject: "a cat",
        arm: "x",
        seed: 1,
        prompts: [],
        refused: [],
      })),
      command("numbers", async () => ({ kind: "report", text: "42", data: 42, files: [] })),
      command("secret", async () => ({
        kind: "report",
        text: "https://survey.example/s/token",
        data: {},
        files: [],
        private: true,
      })),
    ]);
    const words = new RecordingConversation();
    const numbers = new RecordingConversation();
    const secret = new RecordingConversation();
    const unknown = new RecordingConversation();
    await flow.processCommand(event("words", words));
    await flow.processCommand(event("numbers", numbers));
    await flow.processCommand(event("secret", secret));
    await flow.processCommand(event("nothing", unknown));
    // A private report (a rater's link) is told to the asker only, never posted.
    expect(secret.calls).toEqual([
      ["begin", undefined],
      ["whisper", "https://survey.example/s/token"],
    ]);
    expect(words.calls).toEqual([
      ["begin", undefined],
      ["prompts", "a cat"],
    ]);
    expect(numbers.calls).toEqual([
      ["begin", undefined],
      ["report", "42"],
    ]);
    expect(unknown.calls).toEqual([["refuse", "That command is not available."]]);
  });

  it("reports a command whose platform fails while answering as failed, and keeps going", async () => {
    const flow = flowWith([
      command("numbers", async () => ({ kind: "report", text: "42", data: 42, files: [] })),
    ]);
    const broken = new RecordingConversation();
    broken.failOn = "report";
    expect(await flow.processCommand(event("numbers", broken))).toMatchObject({
      outcome: "failed",
    });
    await flow.drain();
  });

  it("drops a redelivered event id and ignores the bot's own reactions", async () => {
    const flow = flowWith([]);
    const message = { channel: "c", id: "m", ref: "c/m" };
    const first = await flow.processReaction({
      eventId: "Ev1",
      added: true,
      user: "bot",
      emoji: "1️⃣",
      message,
    });
    const again = await flow.processReaction({
      eventId: "Ev1",
      added: true,
      user: "bot",
      emoji: "1️⃣",
      message,
    });
    expect(first.outcome).toEqual({ kind: "ignored", reason: "self" });
    expect(again.outcome).toEqual({ kind: "ignored", reason: "duplicate" });
  });
});

describe("chat flow reconciliation", () => {
  it("runs once more for calls that come while it runs, and not after stopAccepting", async () => {
    const store = await memoryVoteStore();
    const first = await seedPosted(store, "discord", "c/m1", 1);
    await seedPosted(store, "discord", "c/m2", 2);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const listed: string[] = [];
    const gated: ChatPlatform = {
      ...platform,
      listReactions: async (message) => {
        listed.push(message.ref);
        await gate;
        return message.ref === "c/m1" ? [{ emoji: "2️⃣", users: ["u7"] }] : [];
      },
    };
    const config = testConfig();
    const logger = createLogger({ level: "silent" });
    const services = { config, logger, votes: store, commands: [] } as unknown as ChatServices;
    const flow = new ChatFlow(gated, services);
    const reasons: string[] = [];
    flow.events.on("reconcile", (report: ReconcileReport) => reasons.push(report.reason));

    const running = flow.reconcile("start");
    const joined = [flow.reconcile("reconnect 1"), flow.reconcile("reconnect 2")];
    release();
    const last = await running;
    expect(await Promise.all(joined)).toEqual([last, last]);
    // One run for "start", one more for the calls that came meanwhile (the latest reason).
    expect(reasons).toEqual(["start", "reconnect 2"]);
    expect(listed.sort()).toEqual(["c/m1", "c/m1", "c/m2", "c/m2"]);
    expect(last?.summary).toMatchObject({ reconciled: 2, added: 0 });
    expect(await store.votesOf(first.id)).toMatchObject([
      { rater: "discord:u7", dimension: "quality", score: 2 },
    ]);

    flow.stopAccepting();
    expect(await flow.reconcile("after shutdown")).toBeUndefined();
    expect(listed).toHaveLength(4);
  });
});
