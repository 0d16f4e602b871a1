/**
 * The Slack adapter: a Bolt app whose `/imagine` commands and reaction events become the chat
 * flow's CommandEvent and ReactionEvent. What happens then is the flow's
 * (src/adapters/chat/flow.ts); the replies are messages.ts, the reactions reactions.ts.
 *
 * Transport: Bolt's HTTP receiver (every request's signature and timestamp checked against
 * SLACK_SIGNING_SECRET; stale or forged requests get 401) by default, Socket Mode when
 * SLACK_APP_TOKEN is set. SLACK_API_URL points the Web API client elsewhere (tests, proxies).
 *
 * `/imagine …` is acknowledged at once (Slack wants an answer within 3 s): `help` and text that
 * cannot be parsed are answered in the acknowledgement itself, everything else runs afterwards.
 * Over HTTP a reaction event is acknowledged once its vote is stored. Slack retries an event it
 * did not see acknowledged in 3 s (same event_id); the event ids seen are claimed in the vote
 * store (StoredIds), so a retry is dropped also after a restart or on another process.
 *
 * Beyond Bolt's checks (requests.ts): a timestamp more than 5 minutes in the future is
 * rejected, and an exact replay of a signed slash command is answered privately as a duplicate.
 * Reactions changed while the bot was down are read back on start and after every Socket Mode
 * reconnect (ChatFlow.reconcile).
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  App,
  HTTPReceiver,
  type RespondFn,
  type SlashCommand,
  SocketModeReceiver,
  webApi,
} from "@slack/bolt";
import type { ImagineResult } from "../../core/pipeline.js";
import type { Logger } from "../../core/types.js";
import { slackName } from "../../core/votes/index.js";
import { RecentIds, type SeenEvents, StoredIds } from "../chat/dedupe.js";
import { ChatFlow } from "../chat/flow.js";
import type { ChatPlatform, ImageMessage, PostedMessage, ReactionUsers } from "../chat/platform.js";
import type { ChatServices, RunningAdapter } from "../chat/services.js";
import type { EmojiScale } from "../chat/votes.js";
import { boltLogger, errorInfo, type SlackClientOptions, slackClientOptions } from "./client.js";
import { helpText, parseSlashText, SLASH_COMMAND } from "./commands.js";
import {
  escapeMrkdwn,
  publishImage,
  SlackConversation,
  type SlackMessageOptions,
} from "./messages.js";
import { addSlackReaction, listSlackReactions, slackEventTime, slackMessage } from "./reactions.js";
import {
  rejectFutureTimestamps,
  SIGNED_REQUEST_MEMORY_MS,
  SIGNED_REQUEST_PROPERTY,
  signedRequestKey,
} from "./requests.js";
import { SLACK_CHANNEL_ID, type SlackSettings } from "./settings.js";

type WebClient = InstanceType<typeof webApi.WebClient>;

export interface SlackAdapterOptions extends SlackMessageOptions, SlackClientOptions {
  /** HTTP mode: where to listen; default settings.port on every interface. */
  listen?: { port?: number; host?: string };
  /**
   * Event ids already handled (default: kept in the vote store for EVENT_ID_MEMORY_MS, so a
   * retry after a restart or on another process is still dropped; without a store the last 5000
   * in memory).
   */
  seen?: SeenEvents;
  /** Signed slash commands already run (default: in the vote store, as `seen`). */
  seenRequests?: SeenEvents;
}

/** How long a Slack event id is remembered: Slack retries a failed delivery for about an hour. */
export const EVENT_ID_MEMORY_MS = 2 * 60 * 60_000;

export class SlackAdapter implements RunningAdapter, ChatPlatform {
  readonly name = "slack";
  readonly app: App;
  readonly flow: ChatFlow;
  readonly mode: "http" | "socket";
  readonly emoji: EmojiScale;
  readonly channels: readonly string[] | undefined;
  readonly admins = "workspace admins and owners";
  /** HTTP mode: the bound port, once started. */
  port: number | undefined;
  private readonly logger: Logger;
  private readonly seenRequests: SeenEvents;

  constructor(
    private readonly settings: SlackSettings,
    services: ChatServices,
    /** The bot's own user id (auth.test): its reactions are not votes. */
    readonly botUser: string,
    botId: string | undefined,
    private readonly options: SlackAdapterOptions = {},
  ) {
    this.logger = services.logger.child({ adapter: "slack" });
    this.emoji = services.config.votes.slackEmoji;
    this.channels = settings.channels;
    const votes = services.votes;
    const seen =
      options.seen ??
      (votes ? new StoredIds(votes, "slack-event:", EVENT_ID_MEMORY_MS) : new RecentIds(5000));
    this.seenRequests =
      options.seenRequests ??
      (votes
        ? new StoredIds(votes, "slack-request:", SIGNED_REQUEST_MEMORY_MS)
        : new RecentIds(5000));
    this.flow = new ChatFlow(this, services, { seen });
    this.mode = settings.appToken !== undefined ? "socket" : "http";
    const boltLog = boltLogger(this.logger);
    const receiver =
      this.mode === "socket"
        ? this.socketReceiver(settings, boltLog)
        : this.httpReceiver(settings, boltLog);
    this.app = new App({
      token: settings.botToken,
      botUserId: botUser,
      ...(botId !== undefined ? { botId } : {}),
      logger: boltLog,
      // The flow tells the bot's own reactions apart itself (and reports them).
      ignoreSelf: false,
      clientOptions: slackClientOptions(settings, options, boltLog),
      receiver,
      ...(this.mode === "socket" ? { socketMode: true } : {}),
    });
    this.app.error(async (error) => {
      this.logger.error({ err: errorInfo(error) }, "slack listener failed");
    });
    this.app.command(SLASH_COMMAND, async ({ command, ack, respond, context }) => {
      const signed = context[SIGNED_REQUEST_PROPERTY];
      // An exact replay of a signed command (HTTP only; Socket Mode requests are not signed).
      if (typeof signed === "string" && !(await this.seenRequests.firstTime(signed))) {
        this.logger.warn(
          { user: command.user_id, channel: command.channel_id },
          "replayed slash command not run again",
        );
        await ack({
          response_type: "ephemeral",
          text: ":information_source: This exact command was already received, so it is not run again.",
        });
        return;
      }
      await this.onSlashCommand(command, ack, respond);
    });
    for (const [kind, added] of [
      ["reaction_added", true],
      ["reaction_removed", false],
    ] as const) {
      this.app.event(kind, async ({ event, body }) => {
        const item = event.item as { type: string; channel?: string; ts?: string };
        const eventId = (body as { event_id?: string }).event_id;
        const at = slackEventTime(event.event_ts);
        // Awaited: over HTTP (processBeforeResponse) Slack gets its 200 once the vote is stored,
        // so a crash before that leaves an unacknowledged event that Slack delivers again.
        await this.flow.processReaction({
          ...(eventId !== undefined ? { eventId } : {}),
          ...(at !== undefined ? { at } : {}),
          added,
          user: event.user,
          emoji: slackName(event.reaction),
          message:
            item.type === "message" && item.channel && item.ts
              ? slackMessage(item.channel, item.ts)
              : undefined,
        });
      });
    }
  }

  /**
   * Socket Mode: events sent while the socket was down are not redelivered, so every
   * reconnect (not the first connection: start() reconciles) reads the reactions back.
   */
  private socketReceiver(settings: SlackSettings, boltLog: ReturnType<typeof boltLogger>) {
    const receiver = new SocketModeReceiver({
      appToken: settings.appToken as string,
      logger: boltLog,
      installerOptions: { clientOptions: { slackApiUrl: settings.apiUrl } },
    });
    let connections = 0;
    receiver.client.on("connected", () => {
      connections += 1;
      if (connections > 1) void this.flow.reconcile("socket mode reconnected");
    });
    return receiver;
  }

  /**
   * Bolt's HTTP receiver (signature, stale timestamps) behind our own check of timestamps in
   * the future, with each request's signed-form key in the context (see requests.ts).
   */
  private httpReceiver(settings: SlackSettings, boltLog: ReturnType<typeof boltLogger>) {
    const receiver = new HTTPReceiver({
      signingSecret: settings.signingSecret as string,
      port: settings.port,
      // Answer after the listener: events are acknowledged once handled (see the reactions).
      processBeforeResponse: true,
      logger: boltLog,
      customPropertiesExtractor: (request) => ({
        [SIGNED_REQUEST_PROPERTY]: signedRequestKey(request),
      }),
    });
    rejectFutureTimestamps(receiver, (timestamp) => {
      this.logger.warn({ timestamp }, "request timestamp too far from now: rejected");
    });
    return receiver;
  }

  /** "command" and "reaction" reports (see ChatFlow.events). */
  get events() {
    return this.flow.events;
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
    // Reactions changed while the bot was down (or whose events a crash lost) are read back.
    void this.flow.reconcile("start");
  }

  stopAccepting(): void {
    this.flow.stopAccepting();
  }

  drain(): Promise<void> {
    return this.flow.drain();
  }

  async close(): Promise<void> {
    this.flow.stopAccepting();
    try {
      await this.app.stop();
    } catch (error) {
      this.logger.warn({ err: errorInfo(error) }, "slack receiver did not stop cleanly");
    }
  }

  // ------------------------------------------------------------------ ChatPlatform

  botUserId(): string {
    return this.botUser;
  }

  commandLabel(command: string): string {
    return `${SLASH_COMMAND} ${command}`;
  }

  postImage(channel: string, message: ImageMessage): Promise<PostedMessage> {
    return publishImage(this.client, channel, message, this.emoji, this.options, this.logger);
  }

  async postText(channel: string, text: string): Promise<PostedMessage> {
    const posted = await this.client.chat.postMessage({
      channel,
      text: `:warning: ${escapeMrkdwn(text)}`,
    });
    if (posted.ts === undefined) throw new Error("Slack returned no message ts");
    return slackMessage(channel, posted.ts);
  }

  addReaction(message: PostedMessage, emoji: string): Promise<void> {
    return addSlackReaction(this.client, message, slackName(emoji));
  }

  /** A bot cannot remove another person's reaction in Slack: the old one stays, not counted. */
  async removeReaction(): Promise<boolean> {
    return false;
  }

  listReactions(message: PostedMessage, signal: AbortSignal): Promise<ReactionUsers[] | undefined> {
    return listSlackReactions(this.client, message, this.botUser, signal);
  }

  messageOfRef(ref: string): PostedMessage | undefined {
    const match = /^([A-Z0-9]+):(\d+\.\d+)$/.exec(ref);
    return match ? slackMessage(match[1] as string, match[2] as string) : undefined;
  }

  // ------------------------------------------------------------------ batch studies

  /**
   * Whether batch-study items for `channel` are posted here: a Slack conversation id (C… public,
   * G… private; Discord's are all digits) and, with an allow-list, one of those.
   */
  ownsChannel(channel: string): boolean {
    if (this.channels && !this.channels.includes(channel)) return false;
    return SLACK_CHANNEL_ID.test(channel);
  }

  postResult(channel: string, result: ImagineResult): Promise<PostedMessage[]> {
    return this.flow.publishResult(channel, result);
  }

  postFailure(channel: string, error: unknown): Promise<PostedMessage | undefined> {
    return this.flow.publishFailure(channel, error);
  }

  // ------------------------------------------------------------------ events

  private async onSlashCommand(
    command: SlashCommand,
    ack: (response?: { response_type: "ephemeral"; text: string }) => Promise<void>,
    respond: RespondFn,
  ): Promise<void> {
    const parsed = parseSlashText(command.text ?? "", this.flow.commands);
    if (parsed.kind === "help") {
      await ack({ response_type: "ephemeral", text: helpText(this.flow.commands) });
      return;
    }
    if (parsed.kind === "usage") {
      await ack({
        response_type: "ephemeral",
        text: `:information_source: ${escapeMrkdwn(parsed.message)}`,
      });
      return;
    }
    await ack();
    // The work runs after the acknowledgement; the listener returns.
    const subject = (parsed.input as { subject?: unknown }).subject;
    void this.flow.processCommand({
      id: command.trigger_id,
      command: parsed.command.name,
      options: parsed.values,
      user: command.user_id,
      server: command.team_id,
      channel: command.channel_id,
      isAdmin: () => this.isWorkspaceAdmin(command.user_id),
      conversation: new SlackConversation(
        this.client,
        {
          channel: command.channel_id,
          user: command.user_id,
          subject: typeof subject === "string" ? subject.trim() : "",
          ...(command.response_url ? { respond } : {}),
        },
        this.emoji,
        this.options,
        this.logger,
      ),
    });
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
