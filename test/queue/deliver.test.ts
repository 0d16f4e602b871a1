/**
 * Delivery across a chat process's restart, on a real Redis with the real flow, pipeline and
 * worker: the delivery claim is a lease confirmed after the post, so a chat process that dies
 * between claiming a result and posting it (here: its platform's post never returns) leaves the
 * job to its restart under the same IMAGINE_CHAT_ID, which posts it, once; and a recovered job
 * that failed after the reply window is posted in its channel as the public failure line.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ChatFlow, type ChatServices, type RunningAdapter } from "../../src/adapters/chat/index.js";
import type {
  ChatPlatform,
  CommandEvent,
  Conversation,
  PostedMessage,
} from "../../src/adapters/chat/platform.js";
import { publishRecovered } from "../../src/adapters/cli/serve.js";
import { imagineCommand } from "../../src/commands/imagine.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import {
  createImagineProcessor,
  createPipeline,
  type ImagineJob,
  type ImagineResult,
  imagineResultCodec,
  type Pipeline,
} from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { BullmqRenderQueue, BullmqRenderWorker } from "../../src/core/queue/bullmq.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../../src/core/types.js";
import { deleteRedisKeys } from "../helpers/redis.js";
import { memoryVoteStore } from "../helpers/votes.js";
import { smallPng, testConfig } from "../pipeline/fakes.js";
import { requireService, runId } from "../votes/services.js";

const url = requireService("IMAGINE_TEST_REDIS_URL", "Redis");
const OWNER = "chat-1";
const HANDLE = "reply-1";

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Renders a small PNG, or fails like an A1111 answering 500, once `gate` opens. */
class GatedBackend implements ImageBackend {
  readonly name = "gated";
  readonly gate = deferred();
  readonly started = deferred();
  constructor(private readonly fails: boolean) {}
  async render(request: ImageRequest): Promise<RenderedImage> {
    this.started.resolve();
    await this.gate.promise;
    if (this.fails) throw new Error("HTTP 500 from the render server");
    return {
      png: await smallPng(),
      width: request.width,
      height: request.height,
      model: "fake/sd",
      seed: request.seed,
    };
  }
  async close(): Promise<void> {}
}

/** A conversation that records what it shows; its image posts may hang for ever. */
function conversation(postImage: Conversation["postImage"]) {
  const calls: [string, unknown][] = [];
  const value: Conversation = {
    begin: async () => {},
    status: async () => {},
    refuse: async (text) => void calls.push(["refuse", text]),
    whisper: async (text) => void calls.push(["whisper", text]),
    fail: async (text) => void calls.push(["fail", text]),
    postImage: async (message, index) => {
      calls.push(["image", message.image.subject]);
      return postImage(message, index);
    },
    prompts: async () => {},
    report: async () => {},
    replyHandle: () => HANDLE,
  };
  return { calls, conversation: value };
}

describe.runIf(url !== undefined)("delivery across a chat process's restart", () => {
  const redis = url as string;
  const cleanup: (() => Promise<unknown>)[] = [];
  let prefix: string;

  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
    await deleteRedisKeys(redis, prefix);
  });

  async function deployment(backend: ImageBackend) {
    prefix = `imagine-test-${runId()}`;
    const dataDir = mkdtempSync(join(tmpdir(), "imagine-deliver-"));
    cleanup.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const config = testConfig(dataDir);
    const logger = createLogger({ level: "silent" });
    const arms = new PromptArms(config, {}, logger);
    cleanup.push(() => arms.close());
    const store = await memoryVoteStore();
    const filter = loadExplicitFilter({});
    const worker = new BullmqRenderWorker(
      { url: redis, prefix, concurrency: 1, codec: imagineResultCodec },
      createImagineProcessor({ config, arms, backend, filter, store, saveImage, logger }),
    );
    cleanup.push(() => worker.close(true));
    await worker.waitUntilReady();

    /** A chat process under OWNER: its pipeline on the shared queue and its flow. */
    const chatProcess = (platform: Partial<ChatPlatform>) => {
      const renderQueue = new BullmqRenderQueue<ImagineJob, ImagineResult>({
        url: redis,
        prefix,
        perUserCap: 5,
        globalCap: 50,
        deadlineMs: config.queue.deadlineMs,
        codec: imagineResultCodec,
      });
      const pipeline: Pipeline = createPipeline({
        config,
        arms,
        filter,
        store,
        saveImage,
        logger,
        renderQueue,
        owner: OWNER,
      });
      cleanup.push(() => pipeline.close());
      const chat: ChatPlatform = {
        name: "discord",
        emoji: config.votes.discordEmoji,
        channels: undefined,
        admins: "admins",
        botUserId: () => "bot",
        commandLabel: (name) => `/${name}`,
        postImage: async () => {
          throw new Error("no channel posts expected");
        },
        addReaction: async () => {},
        removeReaction: async () => false,
        listReactions: async () => undefined,
        messageOfRef: () => undefined,
        ...platform,
      };
      const services = {
        config,
        logger,
        arms,
        pipeline,
        votes: store,
        commands: [imagineCommand],
      } as unknown as ChatServices;
      const flow = new ChatFlow(chat, services);
      const adapter: RunningAdapter = {
        name: "discord",
        stopAccepting: () => {},
        drain: async () => {},
        close: async () => {},
        postResult: (channel, result) => flow.publishResult(channel, result),
        postFailure: (channel, error) => flow.publishFailure(channel, error),
        resumeReply: (handle, outcome, requester) =>
          flow.publishResumed(handle, outcome, requester),
      };
      return { pipeline, flow, adapter, logger };
    };
    return { chatProcess, store };
  }

  function imagine(subject: string, shown: Conversation): CommandEvent {
    return {
      id: `i-${subject}`,
      command: "imagine",
      options: { subject },
      user: "u1",
      channel: "c1",
      isAdmin: async () => false,
      conversation: shown,
    };
  }

  it("posts a result claimed by a process that died before posting it, once, on its restart", async () => {
    const backend = new GatedBackend(false);
    backend.gate.resolve();
    const { chatProcess, store } = await deployment(backend);

    // The first process claims the result and starts posting; the post never returns.
    const posting = deferred();
    const hung = deferred<PostedMessage>();
    const first = chatProcess({});
    const shown = conversation(async () => {
      posting.resolve();
      return hung.promise;
    });
    const command = first.flow.processCommand(imagine("a lighthouse", shown.conversation));
    cleanup.push(async () => {
      hung.reject(new Error("the test is over"));
      await command;
    });
    await posting.promise;

    // Its restart (same IMAGINE_CHAT_ID) finds the job and edits the original reply.
    const edited: PostedMessage[] = [];
    const reply = conversation(async (_message, index) => {
      const posted = { channel: "c1", id: `m${index}`, ref: `c1/m${index}` };
      edited.push(posted);
      return posted;
    });
    const second = chatProcess({
      resumeConversation: (handle) => (handle === HANDLE ? reply.conversation : undefined),
    });
    const recovered = await second.pipeline.jobs.recover(OWNER);
    expect(recovered.map((job) => job.data.subject)).toEqual(["a lighthouse"]);
    await publishRecovered(
      recovered[0] as (typeof recovered)[number],
      [second.adapter],
      second.logger,
    );
    expect(reply.calls).toEqual([["image", "a lighthouse"]]);
    expect(edited.map((m) => m.ref)).toEqual(["c1/m0"]);
    const generation = (await store.findGenerationByMessage("discord", "c1/m0")) as {
      subject: string;
    };
    expect(generation.subject).toBe("a lighthouse");

    // Posted and confirmed: a further restart has nothing to post.
    const third = chatProcess({});
    expect(await third.pipeline.jobs.recover(OWNER)).toEqual([]);
  });

  it("leaves nothing to a restart once the process posted the result itself", async () => {
    const backend = new GatedBackend(false);
    backend.gate.resolve();
    const { chatProcess } = await deployment(backend);
    const first = chatProcess({});
    const shown = conversation(async () => ({ channel: "c1", id: "m0", ref: "c1/m0" }));
    const report = await first.flow.processCommand(imagine("a harbour", shown.conversation));
    expect(report.outcome).toBe("done");
    expect(shown.calls).toEqual([["image", "a harbour"]]);
    expect(await chatProcess({}).pipeline.jobs.recover(OWNER)).toEqual([]);
  });

  it("posts a recovered job's failure in its channel once the reply window has closed", async () => {
    const backend = new GatedBackend(true);
    const { chatProcess } = await deployment(backend);

    // The first process goes away while the job renders; the render then fails.
    const first = chatProcess({});
    const shown = conversation(async () => {
      throw new Error("no image expected");
    });
    const command = first.flow.processCommand(imagine("a castle", shown.conversation));
    await backend.started.promise;
    await first.pipeline.close();
    await command;
    backend.gate.resolve();

    const texts: [string, string][] = [];
    const second = chatProcess({
      // The reply window has closed: the handle no longer resumes anything.
      resumeConversation: () => undefined,
      postText: async (channel, text) => {
        texts.push([channel, text]);
        return { channel, id: "f1", ref: `${channel}/f1` };
      },
    });
    const [job] = await second.pipeline.jobs.recover(OWNER);
    if (job === undefined) throw new Error("the job was not recovered");
    await publishRecovered(job, [second.adapter], second.logger);
    expect(texts).toEqual([
      [
        "c1",
        `Sorry, that failed: Something went wrong while making the image. (reference ${job.data.reference})`,
      ],
    ]);
    expect(await chatProcess({}).pipeline.jobs.recover(OWNER)).toEqual([]);
  });
});
