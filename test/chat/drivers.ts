/**
 * One driver per chat platform for the contract suite: the real adapter (discord.js client or
 * Bolt app) on the real pipeline (tiny prompt model, an in-test PNG backend, the memory vote
 * store) against the platform's fake on 127.0.0.1, behind one interface that speaks in what a
 * person sees: public messages, private answers, files, the bot's reactions.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { CHAT_COMMANDS } from "../../src/adapters/chat/commands.js";
import type { CommandReport, ReactionReport } from "../../src/adapters/chat/flow.js";
import type { PostedMessage } from "../../src/adapters/chat/platform.js";
import type { ChatServices } from "../../src/adapters/chat/services.js";
import { type DiscordAdapter, startDiscordAdapter } from "../../src/adapters/discord/index.js";
import { type SlackAdapter, startSlackAdapter } from "../../src/adapters/slack/index.js";
import type { Config } from "../../src/core/config.js";
import { saveImage } from "../../src/core/image/store.js";
import { createLogger } from "../../src/core/logger.js";
import { createPipeline, type Pipeline } from "../../src/core/pipeline.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { loadExplicitFilter } from "../../src/core/safety/index.js";
import { StudyManager } from "../../src/core/study/manager.js";
import type { Dimension } from "../../src/core/types.js";
import { type KeyvVoteStore, openVoteStore, slackName } from "../../src/core/votes/index.js";
import { ADMIN_PERMISSIONS, FakeDiscord, type RecordedCall } from "../fakes/discord.js";
import {
  type FakeSlack,
  postSigned,
  reactionEvent,
  slashCommandBody,
  startFakeSlack,
} from "../fakes/slack.js";
import { TINY_MODEL_DIR, testConfig } from "../helpers/config.js";
import { nextEvent } from "../pipeline/fakes.js";
import { PngBackend, SIGNING_SECRET } from "../slack/harness.js";

/** What a person saw of one command. */
/** Where the contract's web-survey links point (no server is needed to make them). */
export const WEB_URL = "https://survey.example";

export interface Seen {
  report: CommandReport;
  /** Texts everyone in the channel saw (the last state of each message). */
  public: string[];
  /** Texts only the requester saw. */
  private: string[];
  /** Files posted in the channel with the reply (name and bytes). */
  files: { name: string; data: Buffer }[];
}

export interface ChatDriver {
  readonly platform: "discord" | "slack";
  readonly votes: KeyvVoteStore;
  readonly backend: PngBackend;
  readonly config: Config;
  /** Every log line so far, as written. */
  readonly logs: string[];
  /** Two people (bare platform ids) and a channel outside the allow-list. */
  readonly alice: string;
  readonly bob: string;
  readonly otherChannel: string;
  /** The model directory of the "broken" arm (exists, holds no model). */
  readonly brokenModelDir: string;
  /** Runs a command as `user` (an admin when asked) and waits for it to end. */
  command(
    name: string,
    options: Record<string, string | number | boolean>,
    as?: { user?: string; admin?: boolean; channel?: string },
  ): Promise<Seen>;
  /** The bot's own reactions on a message, as the platform names them. */
  botReactions(message: PostedMessage): string[];
  /** A person adds or removes the reaction for a score; resolves once handled. */
  react(
    message: PostedMessage,
    user: string,
    vote: { dimension: Dimension; score: number },
    added: boolean,
  ): Promise<ReactionReport>;
  stopAccepting(): void;
  close(): Promise<void>;
}

interface Shared {
  dataDir: string;
  brokenModelDir: string;
  config: Config;
  logs: string[];
  services: ChatServices;
  votes: KeyvVoteStore;
  backend: PngBackend;
  pipeline: Pipeline;
  arms: PromptArms;
  studies: StudyManager;
  close(): Promise<void>;
}

async function shared(): Promise<Shared> {
  const dataDir = mkdtempSync(join(tmpdir(), "imagine-chat-"));
  // A model directory that exists (start-up accepts it) but holds no model.
  const brokenModelDir = join(dataDir, "models", "broken-arm");
  mkdirSync(brokenModelDir, { recursive: true });
  writeFileSync(join(brokenModelDir, "model.onnx"), "not a model");
  const config = testConfig({
    dataDir,
    arms: {
      "ft-tags": { kind: "onnx", modelDir: TINY_MODEL_DIR },
      broken: { kind: "onnx", modelDir: brokenModelDir },
    },
    queue: { deadlineMs: 30_000 },
  });
  const logs: string[] = [];
  const logger = createLogger({
    level: "info",
    destination: new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  });
  const arms = new PromptArms(config, {}, logger);
  const votes = await openVoteStore("memory://", { dataDir, logger });
  const backend = new PngBackend();
  const pipeline = createPipeline({
    config,
    arms,
    backend,
    filter: loadExplicitFilter({}),
    store: votes,
    saveImage,
    logger,
  });
  const studies = new StudyManager({ dataDir, logger });
  const services: ChatServices = {
    config,
    logger,
    arms,
    pipeline,
    votes,
    studies,
    web: { secret: "w".repeat(40), host: "127.0.0.1", port: 8787, publicUrl: WEB_URL },
    commands: CHAT_COMMANDS,
  };
  return {
    dataDir,
    brokenModelDir,
    config,
    logs,
    services,
    votes,
    backend,
    pipeline,
    arms,
    studies,
    async close() {
      await pipeline.close();
      await studies.close();
      await arms.close();
      await votes.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function commandDone(
  events: NodeJS.EventEmitter,
  match: (report: CommandReport) => boolean,
): Promise<CommandReport> {
  return nextEvent<CommandReport>(events, "command", match);
}

// ---------------------------------------------------------------------------------- Discord

export async function discordDriver(): Promise<ChatDriver> {
  const base = await shared();
  const fake = new FakeDiscord();
  await fake.start();
  const otherChannel = "1200000000000000099";
  const adapter: DiscordAdapter = await startDiscordAdapter(
    {
      token: fake.token,
      applicationId: fake.applicationId,
      apiUrl: fake.apiUrl,
      channels: [fake.channelId],
    },
    base.services,
  );
  const alice = "1100000000000000001";
  const bob = "1100000000000000002";
  const content = (call: RecordedCall) => (call.json as { content?: string } | undefined)?.content;
  return {
    platform: "discord",
    votes: base.votes,
    backend: base.backend,
    config: base.config,
    logs: base.logs,
    alice,
    bob,
    otherChannel,
    brokenModelDir: base.brokenModelDir,
    async command(name, options, as = {}) {
      const user = fake.user(as.user ?? alice);
      const { id, token } = fake.interact({
        name,
        options: Object.entries(options).map(([option, value]) => ({
          name: option,
          type: typeof value === "string" ? 3 : typeof value === "boolean" ? 5 : 4,
          value,
        })),
        user,
        ...(as.admin ? { permissions: ADMIN_PERMISSIONS } : {}),
        ...(as.channel !== undefined ? { channelId: as.channel } : {}),
      });
      const report = await commandDone(adapter.events, (r) => r.id === id);
      const seen: Seen = { report, public: [], private: [], files: [] };
      let original: string | undefined;
      for (const call of fake.interactionCalls(token)) {
        const path = decodeURIComponent(call.path);
        const json = call.json as { type?: number; data?: { flags?: number; content?: string } };
        if (call.method === "POST" && path.endsWith("/callback")) {
          // type 4: an immediate reply (ephemeral with flag 64); type 5: "thinking…".
          if (json?.type === 4 && json.data?.content !== undefined) {
            ((json.data.flags ?? 0) & 64 ? seen.private : seen.public).push(json.data.content);
          }
        } else if (call.method === "PATCH" && path.endsWith("/messages/@original")) {
          original = content(call) ?? original;
          seen.files.push(...call.files.map((f) => ({ name: f.name, data: f.data })));
        } else if (call.method === "DELETE" && path.endsWith("/messages/@original")) {
          original = undefined;
        } else if (call.method === "POST") {
          const flags = (call.json as { flags?: number } | undefined)?.flags ?? 0;
          const text = content(call);
          if (text !== undefined) (flags & 64 ? seen.private : seen.public).push(text);
          if (!(flags & 64))
            seen.files.push(...call.files.map((f) => ({ name: f.name, data: f.data })));
        }
      }
      if (original !== undefined) seen.public.unshift(original);
      return seen;
    },
    botReactions(message) {
      return fake.calls
        .filter(
          (c) =>
            c.method === "PUT" &&
            c.path.startsWith(`/channels/${message.channel}/messages/${message.id}/reactions/`),
        )
        .map((c) => decodeURIComponent(c.path.split("/")[6] ?? ""));
    },
    async react(message, user, vote, added) {
      const emoji = base.config.votes.discordEmoji[vote.dimension][vote.score - 1] as string;
      const handled = nextEvent<ReactionReport>(
        adapter.events,
        "reaction",
        (r) => r.user === user && r.emoji === emoji && r.added === added,
      );
      if (added) fake.reactionAdd({ messageId: message.id, userId: user, emoji });
      else fake.reactionRemove({ messageId: message.id, userId: user, emoji });
      return handled;
    },
    stopAccepting() {
      adapter.stopAccepting();
    },
    async close() {
      await adapter.drain();
      await adapter.close();
      await base.close();
      await fake.close();
    },
  };
}

// ---------------------------------------------------------------------------------- Slack

export async function slackDriver(): Promise<ChatDriver> {
  const base = await shared();
  const fake: FakeSlack = await startFakeSlack();
  const channel = "C0GENERAL";
  const adapter: SlackAdapter = await startSlackAdapter(
    {
      botToken: fake.botToken,
      signingSecret: SIGNING_SECRET,
      port: 0,
      apiUrl: fake.apiUrl,
      channels: [channel],
    },
    base.services,
    { listen: { port: 0, host: "127.0.0.1" }, fileRetryDelaysMs: [0, 0], apiRetries: 0 },
  );
  const url = `http://127.0.0.1:${adapter.port}/slack/events`;
  const alice = "U0ALICE";
  let events = 0;
  return {
    platform: "slack",
    votes: base.votes,
    backend: base.backend,
    config: base.config,
    logs: base.logs,
    alice,
    bob: "U0BOB",
    otherChannel: "C0RANDOM",
    brokenModelDir: base.brokenModelDir,
    async command(name, options, as = {}) {
      const user = as.user ?? alice;
      if (as.admin) fake.admins.add(user);
      else fake.admins.delete(user);
      // `/imagine <name> <free text> option:value…`, the free text being the subject.
      const words = [name];
      for (const [option, value] of Object.entries(options)) {
        words.push(option === "subject" ? String(value) : `${option}:${value}`);
      }
      const from = fake.calls.length;
      const responsesFrom = fake.responses.length;
      const uploadsFrom = fake.uploadPosts.length;
      const responseUrl = fake.responseUrl();
      const done = commandDone(adapter.events, (r) => r.user === user && r.command === name);
      const response = await postSigned(
        url,
        slashCommandBody({
          text: words.join(" "),
          user,
          channel: as.channel ?? channel,
          responseUrl,
        }),
        { secret: SIGNING_SECRET, contentType: "application/x-www-form-urlencoded" },
      );
      if (response.status !== 200) throw new Error(`slash command answered ${response.status}`);
      const report = await done;
      const seen: Seen = { report, public: [], private: [], files: [] };
      // The messages this command left in the channel, in their last state.
      const shown = new Map<string, string>();
      for (const call of fake.calls.slice(from)) {
        const text = (p: Record<string, unknown>) =>
          [p.text, p.blocks === undefined ? "" : JSON.stringify(p.blocks)].join("\n");
        if (call.method === "chat.postMessage") {
          const ts = String(call.response?.ts ?? `${call.at}.${shown.size}`);
          shown.set(ts, text(call.params));
        } else if (call.method === "chat.update") {
          shown.set(String(call.params.ts), text(call.params));
        } else if (call.method === "chat.delete") {
          shown.delete(String(call.params.ts));
        } else if (call.method === "chat.postEphemeral") {
          seen.private.push(String(call.params.text));
        }
      }
      seen.public.push(...shown.values());
      for (const answer of fake.responses.slice(responsesFrom)) {
        const body = answer.body as { response_type?: string; text?: string };
        (body.response_type === "in_channel" ? seen.public : seen.private).push(body.text ?? "");
      }
      const uploaded = fake.uploadPosts.slice(uploadsFrom);
      for (const complete of fake.callsOf("files.completeUploadExternal")) {
        if (complete.params.channel_id === undefined) continue;
        for (const file of complete.params.files as { id: string }[]) {
          const bytes = uploaded.find((u) => u.fileId === file.id)?.bytes;
          const name = fake.uploads.get(file.id)?.filename;
          if (bytes !== undefined && name !== undefined) seen.files.push({ name, data: bytes });
        }
      }
      return seen;
    },
    botReactions(message) {
      return fake
        .callsOf("reactions.add")
        .filter((c) => c.params.timestamp === message.id && c.params.channel === message.channel)
        .map((c) => String(c.params.name));
    },
    async react(message, user, vote, added) {
      const reaction = slackName(
        base.config.votes.slackEmoji[vote.dimension][vote.score - 1] as string,
      );
      const eventId = `Ev${++events}`;
      const handled = nextEvent<ReactionReport>(
        adapter.events,
        "reaction",
        (r) => r.eventId === eventId,
      );
      const body = JSON.stringify(
        reactionEvent({
          kind: added ? "reaction_added" : "reaction_removed",
          eventId,
          user,
          reaction,
          channel: message.channel,
          ts: message.id,
        }),
      );
      await postSigned(url, body, { secret: SIGNING_SECRET, contentType: "application/json" });
      return handled;
    },
    stopAccepting() {
      adapter.stopAccepting();
    },
    async close() {
      await adapter.drain();
      await adapter.close();
      await base.close();
      await fake.close();
    },
  };
}
