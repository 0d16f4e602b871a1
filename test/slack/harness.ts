/**
 * The real Slack adapter (Bolt, HTTP receiver or Socket Mode) on the real pipeline (the tiny
 * prompt model, an in-test image backend that returns a real PNG) and the memory vote store,
 * talking to the fake Slack of test/fakes/slack.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { CHAT_COMMANDS } from "../../src/adapters/chat/commands.js";
import type { ChatServices } from "../../src/adapters/chat/services.js";
import {
  type CommandReport,
  type ReactionReport,
  type SlackAdapter,
  type SlackAdapterOptions,
  startSlackAdapter,
} from "../../src/adapters/slack/index.js";
import type { SlackSettings } from "../../src/adapters/slack/settings.js";
import type { Config } from "../../src/core/config.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline, type Pipeline } from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../../src/core/types.js";
import { type KeyvVoteStore, openVoteStore } from "../../src/core/votes/store.js";
import {
  type FakeSlack,
  postSigned,
  reactionEvent,
  slashCommandBody,
  startFakeSlack,
} from "../fakes/slack.js";
import { type DeepPartial, testConfig } from "../helpers/config.js";
import { nextEvent, smallPng } from "../pipeline/fakes.js";

export const SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5";

/**
 * Renders a real PNG. `fail` makes renders throw; `gate` holds each render until the test (or a
 * benchmark) releases it.
 */
export class PngBackend implements ImageBackend {
  readonly name = "in-test";
  readonly calls: ImageRequest[] = [];
  fail = false;
  gate: ((request: ImageRequest) => Promise<void>) | undefined;

  async render(request: ImageRequest): Promise<RenderedImage> {
    this.calls.push(request);
    if (this.fail) throw new Error("the image server exploded");
    await this.gate?.(request);
    return {
      png: await smallPng(),
      width: 8,
      height: 8,
      model: "in-test/sd",
      sampler: "Euler a",
      seed: request.seed,
    };
  }

  async close(): Promise<void> {}
}

export interface Harness {
  fake: FakeSlack;
  adapter: SlackAdapter;
  votes: KeyvVoteStore;
  pipeline: Pipeline;
  backend: PngBackend;
  config: Config;
  dataDir: string;
  /** Parsed JSON log lines. */
  logs: Record<string, unknown>[];
  /** HTTP mode: the receiver's events URL. */
  url: string;
  /**
   * Stops the adapter (drained unless `abrupt`: then in-flight work is abandoned, as in a
   * crash) and starts a new one on the same vote store and fake Slack.
   */
  restart(options?: { abrupt?: boolean; whileDown?: () => void | Promise<void> }): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  options: {
    socket?: boolean;
    queue?: Partial<Config["queue"]>;
    backend?: PngBackend;
    /** Replaces the configured arms (a study compares two or more). */
    arms?: DeepPartial<Config>["arms"];
    /** The vote store (default memory://): two harnesses on one Redis are two bot processes. */
    storeUrl?: string;
    /** Another harness's fake Slack, shared (the second process of one app); not closed here. */
    fake?: FakeSlack;
    /** Passed to the adapter. */
    adapterOptions?: SlackAdapterOptions;
  } = {},
): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), "imagine-slack-"));
  const config = testConfig({
    dataDir,
    queue: options.queue ?? {},
    ...(options.arms ? { arms: options.arms } : {}),
  });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    destination: new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split("\n")) if (line.trim()) logs.push(JSON.parse(line));
        done();
      },
    }),
  });
  const arms = new PromptArms(config, {}, logger);
  const votes = await openVoteStore(options.storeUrl ?? "memory://", { dataDir, logger });
  const backend = options.backend ?? new PngBackend();
  const pipeline = createPipeline({
    config,
    arms,
    backend,
    filter: loadExplicitFilter({}),
    store: votes,
    saveImage,
    logger,
  });
  const fake = options.fake ?? (await startFakeSlack());
  const settings: SlackSettings = {
    botToken: fake.botToken,
    port: 0,
    apiUrl: fake.apiUrl,
    ...(options.socket ? { appToken: fake.appToken } : { signingSecret: SIGNING_SECRET }),
  };
  const services: ChatServices = { config, logger, arms, pipeline, votes, commands: CHAT_COMMANDS };
  const start = () =>
    startSlackAdapter(settings, services, {
      listen: { port: 0, host: "127.0.0.1" },
      fileRetryDelaysMs: [0, 0],
      apiRetries: 0,
      ...options.adapterOptions,
    });
  const adapter = await start();
  const harness: Harness = {
    fake,
    adapter,
    votes,
    pipeline,
    backend,
    config,
    dataDir,
    logs,
    url: `http://127.0.0.1:${adapter.port}/slack/events`,
    async restart(restartOptions = {}) {
      harness.adapter.stopAccepting();
      if (!restartOptions.abrupt) await harness.adapter.drain();
      await harness.adapter.close();
      await restartOptions.whileDown?.();
      harness.adapter = await start();
      harness.url = `http://127.0.0.1:${harness.adapter.port}/slack/events`;
    },
    async close() {
      const adapter = harness.adapter;
      adapter.stopAccepting();
      await adapter.drain();
      await adapter.close();
      await pipeline.close();
      await arms.close();
      await votes.close();
      if (options.fake === undefined) await fake.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** Resolves with the next command report (register before sending the command). */
export function nextCommand(adapter: SlackAdapter): Promise<CommandReport> {
  return nextEvent<CommandReport>(adapter.events, "command");
}

/** Resolves with the report of the reaction event with this id. */
export function reactionReport(adapter: SlackAdapter, eventId: string): Promise<ReactionReport> {
  return nextEvent<ReactionReport>(adapter.events, "reaction", (r) => r.eventId === eventId);
}

/** POSTs a signed slash command; resolves with the HTTP answer. */
export function sendSlash(
  h: Harness,
  text: string,
  fields: { user?: string; channel?: string } = {},
  signing: { signature?: string; timestamp?: number } = {},
) {
  return postSigned(
    h.url,
    slashCommandBody({
      text,
      user: fields.user ?? "U0ALICE",
      channel: fields.channel ?? "C0GENERAL",
      responseUrl: h.fake.responseUrl(),
    }),
    { secret: SIGNING_SECRET, contentType: "application/x-www-form-urlencoded", ...signing },
  );
}

/**
 * Changes the reaction on the fake's message (as a person does in Slack), POSTs the signed
 * event and waits until the adapter has handled it. A retry (retryNum) only re-POSTs.
 */
export async function sendReaction(
  h: Harness,
  fields: {
    kind?: "reaction_added" | "reaction_removed";
    eventId: string;
    user?: string;
    reaction: string;
    channel?: string;
    ts: string;
    itemType?: string;
    retryNum?: number;
  },
): Promise<{ status: number; report: ReactionReport }> {
  const handled = reactionReport(h.adapter, fields.eventId);
  // Slack changes the message's reactions, then tells the app (a retry changes nothing).
  const channel = fields.channel ?? "C0GENERAL";
  if (fields.retryNum === undefined && h.fake.messages.has(`${channel}:${fields.ts}`)) {
    const kind = fields.kind ?? "reaction_added";
    h.fake.react(
      channel,
      fields.ts,
      fields.user ?? "U0ALICE",
      fields.reaction,
      kind === "reaction_added",
    );
  }
  const body = JSON.stringify(
    reactionEvent({
      kind: fields.kind ?? "reaction_added",
      eventId: fields.eventId,
      user: fields.user ?? "U0ALICE",
      reaction: fields.reaction,
      channel: fields.channel ?? "C0GENERAL",
      ts: fields.ts,
      ...(fields.itemType ? { itemType: fields.itemType } : {}),
    }),
  );
  const response = await postSigned(h.url, body, {
    secret: SIGNING_SECRET,
    contentType: "application/json",
    ...(fields.retryNum !== undefined ? { retryNum: fields.retryNum } : {}),
  });
  return { status: response.status, report: await handled };
}
