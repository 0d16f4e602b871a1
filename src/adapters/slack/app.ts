/**
 * The Slack adapter: a Bolt app that translates `/imagine` and reactions into commands and votes.
 *
 * Transport: Bolt's HTTP receiver (every request's signature and timestamp checked against
 * SLACK_SIGNING_SECRET; stale or forged requests get 401) by default, Socket Mode when
 * SLACK_APP_TOKEN is set. SLACK_API_URL points the Web API client elsewhere (tests, proxies).
 *
 * /imagine <subject>: acknowledged at once (Slack wants an answer within 3 s); a message is then
 * posted and updated as the job moves (queue position, writing the prompt, rendering). The PNG
 * is uploaded with files.uploadV2 (files.getUploadURLExternal → upload → files.completeUploadExternal,
 * shared to no channel) and the same message is updated into Block Kit whose image block refers
 * to the file (`slack_file: {id}`): the bot therefore knows that message's ts for sure, records
 * it (store.setMessageRef, ref `${channel}:${ts}`) and adds the eight voting reactions in order.
 * Batch-study items (postResult, see shared/studyPoster.ts) go the same way as new messages.
 *
 * Reactions: reaction_added casts a vote, reaction_removed retracts it if that score is still the
 * current one. A second reaction in the same dimension replaces the vote; unlike Discord, a bot
 * cannot remove another person's reaction in Slack, so the older reaction stays visible but no
 * longer counts (removing it later changes nothing). The bot's own reactions, reactions on other
 * items or messages and reactions that are not votes are ignored. Slack retries an event it did
 * not see acknowledged in 3 s (x-slack-retry-num); Bolt acknowledges every event before the
 * listener runs, and a bounded LRU of event_ids drops the retries so a vote never counts twice.
 *
 * Refusals (UserError) are told only to the person, ephemerally, with the reason; other failures
 * replace the progress message with "No image … (ref abc123)", the reference the pipeline logged.
 */
import { EventEmitter } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  App,
  type Logger as BoltLogger,
  LogLevel,
  type RespondFn,
  type SlashCommand,
  SocketModeReceiver,
  webApi,
} from "@slack/bolt";
import type { ImagineProgress, ImagineResult } from "../../core/pipeline.js";
import type { Logger } from "../../core/types.js";
import { slackName } from "../../core/votes/emoji.js";
import type { AnyCommand } from "../shared/commands.js";
import {
  failureReply,
  type ImageReply,
  imageReplies,
  isImagineResult,
  progressText,
  refusalNotes,
  resultText,
} from "../shared/replies.js";
import {
  type ChatServices,
  commandContext,
  InFlight,
  type RunningAdapter,
} from "../shared/services.js";
import { type ReactionOutcome, ReactionVotes, votingReactions } from "../shared/votes.js";
import { helpText, parseSlashText, SLASH_COMMAND } from "./commands.js";
import { escapeMrkdwn, imageBlocks, progressLine } from "./messages.js";
import type { SlackSettings } from "./settings.js";

type WebClient = InstanceType<typeof webApi.WebClient>;

/** How a posted image is referred to in the vote store: "<channel id>:<message ts>". */
export function slackMessageRef(channel: string, ts: string): string {
  return `${channel}:${ts}`;
}

export interface SlackAdapterOptions {
  /** HTTP mode: where to listen; default settings.port on every interface. */
  listen?: { port?: number; host?: string };
  /**
   * Waits before retrying the image message while Slack is still processing the upload
   * (invalid_blocks on a fresh slack_file). Default 1, 2 and 4 seconds.
   */
  fileRetryDelaysMs?: readonly number[];
  /** Web API request timeout (default 15 s) and retries (default 2). */
  apiTimeoutMs?: number;
  apiRetries?: number;
  /** event_ids remembered to drop Slack's retries (default 5000). */
  dedupeSize?: number;
}

/** What happened to one reaction event (emitted as "reaction" on SlackAdapter.events). */
export interface SlackReactionReport {
  eventId?: string;
  added: boolean;
  user: string;
  reaction: string;
  messageRef?: string;
  outcome:
    | ReactionOutcome
    | {
        kind: "ignored";
        reason: "duplicate" | "self" | "not-a-message" | "no-vote-store";
      }
    | { kind: "error"; error: unknown };
}

/** How one command ended (emitted as "command" on SlackAdapter.events). */
export interface SlackCommandReport {
  command: string;
  user: string;
  outcome: "done" | "refused" | "failed";
  /** Message refs posted with images, in order. */
  messages: string[];
}

/** Bolt and the Web API client log through the core logger. */
export function boltLogger(logger: Logger): BoltLogger {
  let level = LogLevel.INFO;
  const child = logger.child({ component: "bolt" });
  const line = (msg: unknown[]) =>
    msg
      .map((m) => (m instanceof Error ? m.message : typeof m === "string" ? m : safeStringify(m)))
      .join(" ");
  return {
    debug: (...msg: unknown[]) => child.debug({}, line(msg)),
    info: (...msg: unknown[]) => child.info({}, line(msg)),
    warn: (...msg: unknown[]) => child.warn({}, line(msg)),
    error: (...msg: unknown[]) => child.error({}, line(msg)),
    setLevel: (next: LogLevel) => {
      level = next;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/** A bounded set that forgets its oldest entries: event_ids already handled. */
export class RecentIds {
  private readonly ids = new Set<string>();
  constructor(private readonly size: number) {}
  /** True the first time an id is seen. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.size) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }
}

/**
 * The message updated while a job moves. Updates are coalesced: while one call is in flight only
 * the latest text is kept, so a burst of queue positions costs one chat.update.
 */
class StatusMessage {
  ts: string | undefined;
  private latest: string | undefined;
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly client: WebClient,
    private readonly channel: string,
    private readonly logger: Logger,
  ) {}

  show(text: string): void {
    if (this.closed) return;
    this.latest = text;
    if (this.scheduled) return;
    this.scheduled = true;
    this.chain = this.chain.then(() => this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const text = this.latest;
    if (text === undefined || this.closed) return;
    try {
      if (this.ts === undefined) {
        const posted = await this.client.chat.postMessage({ channel: this.channel, text });
        this.ts = posted.ts;
      } else {
        await this.client.chat.update({ channel: this.channel, ts: this.ts, text });
      }
    } catch (error) {
      this.logger.warn({ err: errorInfo(error) }, "progress message not posted");
    }
  }

  /** No more progress; resolves with the message's ts (if it was posted) once calls settle. */
  async close(): Promise<string | undefined> {
    this.closed = true;
    await this.chain;
    return this.ts;
  }
}

function errorInfo(error: unknown): object {
  if (error instanceof Error) {
    const code = slackErrorCode(error);
    return { message: error.message, ...(code ? { slack: code } : {}) };
  }
  return { message: String(error) };
}

function slackErrorCode(error: unknown): string | undefined {
  return (error as { data?: { error?: string } } | undefined)?.data?.error;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} not done within ${ms} ms`)), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

function uploadedFileId(upload: unknown): string | undefined {
  const files = (upload as { files?: { files?: { id?: string }[] }[] }).files;
  return files?.[0]?.files?.[0]?.id;
}

/** A Slack conversation id that can hold a study: public (C…) or private (G…) channel. */
const SLACK_CHANNEL_ID = /^[CG][A-Z0-9]{6,}$/;

export class SlackAdapter implements RunningAdapter {
  readonly name = "slack";
  /** "reaction" (SlackReactionReport) and "command" (SlackCommandReport), once fully handled. */
  readonly events = new EventEmitter();
  readonly app: App;
  readonly mode: "http" | "socket";
  /** HTTP mode: the bound port, once started. */
  port: number | undefined;
  private accepting = true;
  private readonly inFlight = new InFlight();
  private readonly reactionWork = new InFlight();
  private readonly votes: ReactionVotes | undefined;
  private readonly commands: Map<string, AnyCommand>;
  private readonly logger: Logger;
  private readonly seen: RecentIds;
  private readonly reactions: string[];

  constructor(
    private readonly settings: SlackSettings,
    private readonly services: ChatServices,
    /** The bot's own user id (auth.test): its reactions are not votes. */
    readonly botUserId: string,
    botId: string | undefined,
    private readonly options: SlackAdapterOptions = {},
  ) {
    this.logger = services.logger.child({ adapter: "slack" });
    this.commands = new Map(services.commands.map((command) => [command.name, command]));
    const scale = services.config.votes.slackEmoji;
    this.votes = services.votes ? new ReactionVotes(services.votes, scale) : undefined;
    this.reactions = votingReactions(scale).map(slackName);
    this.seen = new RecentIds(options.dedupeSize ?? 5000);
    this.mode = settings.appToken !== undefined ? "socket" : "http";
    const boltLog = boltLogger(this.logger);
    const receiver =
      this.mode === "socket"
        ? new SocketModeReceiver({
            appToken: settings.appToken as string,
            logger: boltLog,
            installerOptions: { clientOptions: { slackApiUrl: settings.apiUrl } },
          })
        : undefined;
    this.app = new App({
      token: settings.botToken,
      botUserId,
      ...(botId !== undefined ? { botId } : {}),
      logger: boltLog,
      // The reaction handler tells the bot's own reactions apart itself (and reports them).
      ignoreSelf: false,
      clientOptions: slackClientOptions(settings, options, boltLog),
      ...(receiver !== undefined
        ? { receiver, socketMode: true }
        : {
            signingSecret: settings.signingSecret,
            port: settings.port,
            processBeforeResponse: false,
          }),
    });
    this.app.error(async (error) => {
      this.logger.error({ err: errorInfo(error) }, "slack listener failed");
    });
    this.app.command(SLASH_COMMAND, async ({ command, ack, respond }) => {
      await this.onSlashCommand(command, ack, respond);
    });
    this.app.event("reaction_added", async ({ event, body }) => {
      this.onReaction(true, event, (body as { event_id?: string }).event_id);
    });
    this.app.event("reaction_removed", async ({ event, body }) => {
      this.onReaction(false, event, (body as { event_id?: string }).event_id);
    });
  }

  private get client(): WebClient {
    return this.app.client;
  }

  async start(): Promise<void> {
    if (this.mode === "socket") {
      await this.app.start();
    } else {
      const server = (await this.app.start({
        port: this.options.listen?.port ?? this.settings.port,
        ...(this.options.listen?.host !== undefined ? { host: this.options.listen.host } : {}),
      })) as unknown as Server;
      this.port = (server.address() as AddressInfo).port;
    }
    this.logger.info({ mode: this.mode, port: this.port }, "slack adapter started");
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  async drain(): Promise<void> {
    await Promise.all([this.inFlight.drain(), this.reactionWork.drain()]);
  }

  async close(): Promise<void> {
    this.accepting = false;
    try {
      await this.app.stop();
    } catch (error) {
      this.logger.warn({ err: errorInfo(error) }, "slack receiver did not stop cleanly");
    }
  }

  // ------------------------------------------------------------------ commands

  private async onSlashCommand(
    command: SlashCommand,
    ack: (response?: { response_type: "ephemeral"; text: string }) => Promise<void>,
    respond: RespondFn,
  ): Promise<void> {
    const commands = [...this.commands.values()];
    const parsed = parseSlashText(command.text ?? "", commands);
    if (parsed.kind === "help") {
      await ack({ response_type: "ephemeral", text: helpText(commands) });
      return;
    }
    if (parsed.kind === "usage") {
      await ack({
        response_type: "ephemeral",
        text: `:information_source: ${escapeMrkdwn(parsed.message)}`,
      });
      return;
    }
    if (!this.accepting) {
      await ack({
        response_type: "ephemeral",
        text: "The bot is shutting down; try again in a moment.",
      });
      return;
    }
    await ack();
    // The work runs after the acknowledgement (Slack wants one within 3 s); the listener returns.
    void this.inFlight.track(
      this.run(parsed.command, parsed.input, command, respond).catch((error) => {
        this.logger.error({ err: errorInfo(error) }, "slack command crashed");
      }),
    );
  }

  private async tellPrivately(
    command: SlashCommand,
    respond: RespondFn,
    text: string,
  ): Promise<void> {
    try {
      if (command.response_url) {
        await respond({ response_type: "ephemeral", replace_original: false, text });
      } else {
        await this.client.chat.postEphemeral({
          channel: command.channel_id,
          user: command.user_id,
          text,
        });
      }
    } catch (error) {
      this.logger.warn({ err: errorInfo(error) }, "ephemeral reply not delivered");
    }
  }

  /** Admin commands are for workspace admins and owners (Slack's nearest to Manage Server). */
  private async isWorkspaceAdmin(user: string): Promise<boolean> {
    try {
      const info = await this.client.users.info({ user });
      return Boolean(info.user?.is_admin || info.user?.is_owner || info.user?.is_primary_owner);
    } catch (error) {
      this.logger.warn(
        { err: errorInfo(error), user },
        "users.info failed; treating as not an admin",
      );
      return false;
    }
  }

  private async run(
    declaration: AnyCommand,
    input: unknown,
    command: SlashCommand,
    respond: RespondFn,
  ): Promise<void> {
    const report = (outcome: SlackCommandReport["outcome"], messages: string[] = []): void => {
      this.events.emit("command", {
        command: declaration.name,
        user: command.user_id,
        outcome,
        messages,
      } satisfies SlackCommandReport);
    };
    if (declaration.adminOnly && !(await this.isWorkspaceAdmin(command.user_id))) {
      await this.tellPrivately(
        command,
        respond,
        `Only workspace admins and owners can use /imagine ${declaration.name}.`,
      );
      report("refused");
      return;
    }
    const subject = String((input as { subject?: unknown }).subject ?? "").trim();
    const status = new StatusMessage(this.client, command.channel_id, this.logger);
    const onProgress = (event: ImagineProgress) => {
      const line = progressText(event);
      if (line !== undefined) status.show(progressLine(subject, command.user_id, line));
    };
    const context = commandContext(
      this.services,
      this.logger,
      {
        platform: "slack",
        user: `slack:${command.user_id}`,
        server: command.team_id,
        channel: command.channel_id,
      },
      onProgress,
    );
    let result: unknown;
    try {
      result = await declaration.execute(context, input);
    } catch (error) {
      const ts = await status.close();
      const failure = failureReply(error, this.logger, declaration.name);
      if (failure.kind === "refusal") {
        // A refusal is the asker's business: say why to them only; take back the public message.
        if (ts !== undefined) {
          await this.client.chat.delete({ channel: command.channel_id, ts }).catch(() => {});
        }
        await this.tellPrivately(command, respond, `:no_entry: ${escapeMrkdwn(failure.text)}`);
        report("refused");
        return;
      }
      const text = `:warning: ${escapeMrkdwn(failure.text)}`;
      let shown = false;
      if (ts !== undefined) {
        shown = await this.client.chat
          .update({ channel: command.channel_id, ts, text })
          .then(() => true)
          .catch(() => false);
      }
      if (!shown) await this.tellPrivately(command, respond, text);
      report("failed");
      return;
    }
    const ts = await status.close();
    if (!isImagineResult(result)) {
      if (ts !== undefined)
        await this.client.chat.delete({ channel: command.channel_id, ts }).catch(() => {});
      await this.tellPrivately(
        command,
        respond,
        escapeMrkdwn(resultText(declaration.name, result)),
      );
      report("done");
      return;
    }
    const posted = await this.postImages(result, command, respond, ts);
    const notes = refusalNotes(result);
    if (notes.length > 0)
      await this.tellPrivately(command, respond, escapeMrkdwn(notes.join("\n")));
    report(posted.failed ? "failed" : "done", posted.refs);
  }

  /** Each image: the first replaces the progress message, the others are new messages. */
  private async postImages(
    result: ImagineResult,
    command: SlashCommand,
    respond: RespondFn,
    statusTs: string | undefined,
  ): Promise<{ refs: string[]; failed: boolean }> {
    const refs: string[] = [];
    let failed = false;
    let reuse = statusTs;
    for (const reply of imageReplies(result)) {
      try {
        // Slack calls time out and retry a few times; the whole publication is bounded by the
        // job deadline, so nothing waits longer than a job may.
        refs.push(
          await withDeadline(
            this.publish(reply, command.channel_id, command.user_id, reuse),
            this.services.config.queue.deadlineMs,
            "posting the image",
          ),
        );
      } catch (error) {
        failed = true;
        const failure = failureReply(error, this.logger, "imagine");
        const text = `:warning: The image for *${escapeMrkdwn(reply.subject)}* was made but could not be posted here (${slackErrorCode(error) ?? "Slack error"}; reference ${failure.reference})`;
        const shown =
          reuse !== undefined &&
          (await this.client.chat
            .update({ channel: command.channel_id, ts: reuse, text, blocks: [] })
            .then(() => true)
            .catch(() => false));
        if (!shown) await this.tellPrivately(command, respond, text);
      }
      reuse = undefined;
    }
    return { refs, failed };
  }

  /**
   * Whether batch-study items for `channel` are posted here: a Slack conversation id (C…
   * public, G… private; Discord's are all digits).
   */
  ownsChannel(channel: string): boolean {
    return SLACK_CHANNEL_ID.test(channel);
  }

  /**
   * Posts an imagine result into a channel as new bot messages (batch studies), each recorded
   * for votes and given the voting reactions, like /imagine's. Returns the message refs.
   */
  async postResult(channel: string, result: ImagineResult): Promise<string[]> {
    const refs: string[] = [];
    for (const reply of imageReplies(result)) {
      refs.push(
        await withDeadline(
          this.publish(reply, channel, undefined, undefined),
          this.services.config.queue.deadlineMs,
          "posting the image",
        ),
      );
    }
    return refs;
  }

  /**
   * Uploads the PNG, shows it (Block Kit, slack_file) in place of the status message or as a new
   * message, records the message, adds the reactions.
   */
  private async publish(
    reply: ImageReply,
    channel: string,
    user: string | undefined,
    statusTs: string | undefined,
  ): Promise<string> {
    const upload = await this.client.files.uploadV2({
      file: reply.png,
      filename: reply.fileName,
      title: reply.subject.slice(0, 250),
      alt_text: reply.altText.slice(0, 1000),
    });
    const fileId = uploadedFileId(upload);
    if (fileId === undefined) throw new Error("files.uploadV2 returned no file id");
    const message = imageBlocks(reply, fileId, user, this.services.config.votes.slackEmoji);
    const delays = this.options.fileRetryDelaysMs ?? [1000, 2000, 4000];
    let ts: string | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        if (statusTs !== undefined) {
          const updated = await this.client.chat.update({ channel, ts: statusTs, ...message });
          ts = updated.ts ?? statusTs;
        } else {
          ts = (await this.client.chat.postMessage({ channel, ...message })).ts;
        }
        break;
      } catch (error) {
        // Slack processes an upload asynchronously: a slack_file it has not finished is
        // invalid_blocks for a moment.
        const delay = delays[attempt];
        if (slackErrorCode(error) !== "invalid_blocks" || delay === undefined) throw error;
        this.logger.info({ attempt: attempt + 1, delay }, "uploaded image not ready; retrying");
        await sleep(delay);
      }
    }
    if (ts === undefined) throw new Error("Slack returned no message ts");
    const ref = slackMessageRef(channel, ts);
    if (this.services.votes) {
      await this.services.votes.setMessageRef(reply.generationId, ref);
      for (const name of this.reactions) {
        try {
          await this.client.reactions.add({ channel, timestamp: ts, name });
        } catch (error) {
          if (slackErrorCode(error) !== "already_reacted") throw error;
        }
      }
    }
    this.logger.info({ generation: reply.generationId, ref }, "image posted");
    return ref;
  }

  // ------------------------------------------------------------------ votes

  private onReaction(
    added: boolean,
    event: {
      user: string;
      reaction: string;
      item: { type: string; channel?: string; ts?: string };
    },
    eventId: string | undefined,
  ): void {
    const base = {
      ...(eventId !== undefined ? { eventId } : {}),
      added,
      user: event.user,
      reaction: event.reaction,
    };
    const report = (outcome: SlackReactionReport["outcome"], messageRef?: string): void => {
      this.events.emit("reaction", {
        ...base,
        ...(messageRef !== undefined ? { messageRef } : {}),
        outcome,
      } satisfies SlackReactionReport);
    };
    // Slack redelivers an event (same event_id) it did not see acknowledged in time.
    if (eventId !== undefined && !this.seen.add(eventId)) {
      this.logger.debug({ eventId }, "retried event dropped");
      report({ kind: "ignored", reason: "duplicate" });
      return;
    }
    if (event.user === this.botUserId) {
      report({ kind: "ignored", reason: "self" });
      return;
    }
    if (event.item.type !== "message" || !event.item.channel || !event.item.ts) {
      report({ kind: "ignored", reason: "not-a-message" });
      return;
    }
    const messageRef = slackMessageRef(event.item.channel, event.item.ts);
    if (!this.votes) {
      report({ kind: "ignored", reason: "no-vote-store" }, messageRef);
      return;
    }
    void this.reactionWork.track(
      this.votes
        .apply({
          platform: "slack",
          messageRef,
          rater: `slack:${event.user}`,
          emoji: slackName(event.reaction),
          added,
        })
        .then(
          (outcome) => report(outcome, messageRef),
          (error) => {
            this.logger.error({ err: errorInfo(error), messageRef }, "vote not recorded");
            report({ kind: "error", error }, messageRef);
          },
        ),
    );
  }
}

function slackClientOptions(
  settings: SlackSettings,
  options: SlackAdapterOptions,
  logger: BoltLogger,
) {
  return {
    slackApiUrl: settings.apiUrl,
    timeout: options.apiTimeoutMs ?? 15_000,
    retryConfig: { retries: options.apiRetries ?? 2, factor: 2, minTimeout: 500, maxTimeout: 4000 },
    logger,
  };
}

/**
 * Checks the token with one auth.test (a bad token fails here, not at the first command), builds
 * the adapter with the bot's user id, and starts receiving.
 */
export async function startSlackAdapter(
  settings: SlackSettings,
  services: ChatServices,
  options: SlackAdapterOptions = {},
): Promise<SlackAdapter> {
  const probe = new webApi.WebClient(
    settings.botToken,
    slackClientOptions(settings, options, boltLogger(services.logger)),
  );
  const auth = await probe.auth.test();
  if (!auth.user_id) throw new Error("auth.test returned no user_id for SLACK_BOT_TOKEN");
  services.logger.info(
    { adapter: "slack", botUserId: auth.user_id, team: auth.team_id },
    "slack token ok",
  );
  const adapter = new SlackAdapter(settings, services, auth.user_id, auth.bot_id, options);
  await adapter.start();
  return adapter;
}
