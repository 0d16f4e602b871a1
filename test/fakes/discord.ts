/**
 * A fake Discord on 127.0.0.1 for the real discord.js client: the REST API (node:http) and the
 * gateway (ws) on one port.
 *
 * REST (under /api/v10, the prefix is optional): GET /gateway/bot and /gateway answer the fake's
 * own ws:// URL; interaction callbacks; the interaction webhook (PATCH/GET/DELETE @original,
 * follow-ups), multipart bodies included; POST of a bot message to a channel (multipart too);
 * own and user reactions (PUT/DELETE) and the list of users with one reaction (GET
 * …/reactions/{emoji}, paginated by `after`, from the per-message state in `reactions`); GET
 * channel, message (with its reaction counts) and user (partial fetches); bulk PUT of global and guild application commands.
 * Every request is recorded with its parsed body (JSON, or multipart: payload_json and files).
 * Routes that need a bot token check it (401 otherwise), as Discord does.
 *
 * Gateway: HELLO (op 10) → IDENTIFY (op 2) → READY (with user, application, session_id,
 * resume_gateway_url, one unavailable guild) → GUILD_CREATE (one text channel); heartbeat ACKs
 * (op 11); RESUME → RESUMED. Tests dispatch INTERACTION_CREATE and MESSAGE_REACTION_ADD/REMOVE.
 * Shards: addGuild() adds guilds (one text channel each); an IDENTIFY with `shard: [id, count]`
 * gets READY and GUILD_CREATE for the guilds with (guild id >> 22) % count === id only, and a
 * dispatch about a guild goes only to the connections of its shard, as Discord does. GET
 * /gateway/bot recommends `recommendedShards`, identifies allowed at once `maxConcurrency`.
 * Like Discord, reactions the REST API adds or removes are echoed as gateway events (off with
 * echoReactions = false). Compression is never offered (discord.js only asks for zlib-stream
 * when zlib-sync is installed; the fake would ignore the query either way).
 */
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";

export interface FakeUser {
  id: string;
  username: string;
  discriminator: string;
  global_name: string | null;
  avatar: string | null;
  bot?: boolean;
}

export interface RecordedFile {
  field: string;
  name: string;
  contentType: string;
  data: Buffer;
}

export interface RecordedCall {
  index: number;
  method: string;
  /** Without the /api and /v10 prefixes, emoji still percent-encoded. */
  path: string;
  query: Record<string, string>;
  headers: IncomingMessage["headers"];
  /** A JSON body, or multipart's payload_json. */
  json?: unknown;
  files: RecordedFile[];
  status: number;
}

export interface GatewayPayload {
  op: number;
  d: unknown;
  s?: number | null;
  t?: string | null;
}

export interface StoredMessage {
  id: string;
  channel_id: string;
  [key: string]: unknown;
}

interface InteractionState {
  id: string;
  token: string;
  channelId: string;
  originalId?: string;
}

const BASE_SNOWFLAKE = 1_300_000_000_000_000_000n;

/** Permissions of an ordinary member: view, send, add reactions, read history… */
export const MEMBER_PERMISSIONS = "2248473465835073";
/** Those plus Manage Server. */
export const ADMIN_PERMISSIONS = (BigInt(MEMBER_PERMISSIONS) | (1n << 5n)).toString();

export class FakeDiscord extends EventEmitter {
  readonly token = "fake-bot-token.abc.def";
  readonly applicationId = "1200000000000000001";
  readonly guildId = "1200000000000000002";
  readonly channelId = "1200000000000000003";
  readonly botUser: FakeUser = {
    id: this.applicationId,
    username: "imagine-bot",
    discriminator: "0",
    global_name: null,
    avatar: null,
    bot: true,
  };
  readonly calls: RecordedCall[] = [];
  readonly identifies: {
    token: string;
    intents: number;
    compress: unknown;
    /** [shard id, shard count] as identified; [0, 1] when none was given. */
    shard: [number, number];
  }[] = [];
  /** Every guild with its one text channel; the first is guildId / channelId. */
  readonly guilds: { id: string; channelId: string }[] = [
    { id: this.guildId, channelId: this.channelId },
  ];
  /** GET /gateway/bot: the shard count Discord recommends (DISCORD_SHARDS=auto uses it). */
  recommendedShards = 1;
  /** GET /gateway/bot: how many shards may identify at once (discord.js waits 5 s otherwise). */
  maxConcurrency = 1;
  readonly gatewayQueries: string[] = [];
  readonly messages = new Map<string, StoredMessage>();
  readonly users = new Map<string, FakeUser>();
  /**
   * Who has which reaction on each message, as Discord keeps it (message id → emoji → user
   * ids): every add or remove changes it, whether or not a bot was connected to hear of it.
   * GET …/reactions/{emoji} lists it. A custom emoji is keyed "name:id".
   */
  readonly reactions = new Map<string, Map<string, Set<string>>>();
  /** Echo REST reaction changes as gateway events, as Discord does. */
  echoReactions = true;
  /** Answer 403 Missing Permissions to DELETE of another user's reaction. */
  forbidReactionRemoval = false;

  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly sockets = new Set<WebSocket>();
  private readonly sequence = new WeakMap<WebSocket, number>();
  private readonly shardOf = new WeakMap<WebSocket, [number, number]>();
  private readonly interactions = new Map<string, InteractionState>();
  private nextSnowflake = BASE_SNOWFLAKE;
  private port = 0;

  constructor() {
    super();
    this.users.set(this.botUser.id, this.botUser);
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Open gateway connections that have identified. */
  get connections(): number {
    return [...this.sockets].filter((s) => s.readyState === s.OPEN).length;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      void this.handle(req, res).catch((error: unknown) => {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: String(error), code: 0 }));
      });
    });
    this.server = server;
    this.wss = new WebSocketServer({ server });
    this.wss.on("connection", (socket, req) => this.onConnection(socket, req));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => (this.wss ? this.wss.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  snowflake(): string {
    this.nextSnowflake += 1n;
    return this.nextSnowflake.toString();
  }

  user(id: string, options: { bot?: boolean; name?: string } = {}): FakeUser {
    const user: FakeUser = {
      id,
      username: options.name ?? `user${id.slice(-4)}`,
      discriminator: "0",
      global_name: options.name ?? null,
      avatar: null,
      ...(options.bot ? { bot: true } : {}),
    };
    this.users.set(id, user);
    return user;
  }

  /**
   * Adds a guild (with one text channel) that lands on `shard` of `count` by Discord's rule,
   * (guild id >> 22) % count; without `shard`, the next snowflake. Connect after adding.
   */
  addGuild(placement?: { shard: number; count: number }): { id: string; channelId: string } {
    let id = this.snowflake();
    while (placement && guildShard(id, placement.count) !== placement.shard) {
      // The shard is decided by the timestamp bits above bit 22: step one unit there.
      id = (BigInt(id) + (1n << 22n)).toString();
    }
    const guild = { id, channelId: this.snowflake() };
    this.guilds.push(guild);
    return guild;
  }

  /** The guild a channel belongs to. */
  guildOfChannel(channelId: string): string {
    return this.guilds.find((guild) => guild.channelId === channelId)?.id ?? this.guildId;
  }

  /** The shards ([id, count]) of the open connections, in connection order. */
  get connectedShards(): [number, number][] {
    return [...this.sockets]
      .filter((socket) => socket.readyState === socket.OPEN && this.shardOf.has(socket))
      .map((socket) => this.shardOf.get(socket) as [number, number]);
  }

  // ---- waiting on what happened ----

  /** The first call (already made or future) that matches. */
  waitForCall(match: (call: RecordedCall) => boolean): Promise<RecordedCall> {
    const found = this.calls.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => {
      const listener = (call: RecordedCall) => {
        if (!match(call)) return;
        this.off("call", listener);
        resolve(call);
      };
      this.on("call", listener);
    });
  }

  /** Resolves once `count` gateway connections have identified (1 for the first login). */
  waitForIdentify(count = 1): Promise<void> {
    if (this.identifies.length >= count) return Promise.resolve();
    return new Promise((resolve) => {
      const listener = () => {
        if (this.identifies.length < count) return;
        this.off("identify", listener);
        resolve();
      };
      this.on("identify", listener);
    });
  }

  /** Calls that belong to one interaction (its callback and webhook), in order. */
  interactionCalls(token: string): RecordedCall[] {
    return this.calls.filter((call) => call.path.includes(`/${token}`));
  }

  // ---- gateway dispatches ----

  /** Sends an event to every open connection, or only to the shard of the guild it is about. */
  dispatch(t: string, d: unknown): void {
    const guildId = (d as { guild_id?: unknown } | null)?.guild_id;
    for (const socket of this.sockets) {
      if (socket.readyState !== socket.OPEN) continue;
      const [shard, count] = this.shardOf.get(socket) ?? [0, 1];
      if (typeof guildId === "string" && guildShard(guildId, count) !== shard) continue;
      this.send(socket, { op: 0, t, d });
    }
  }

  /** Dispatches a slash command; returns the interaction's id and token. */
  interact(options: {
    name: string;
    options?: { name: string; type: number; value: unknown }[];
    user?: FakeUser;
    permissions?: string;
    channelId?: string;
  }): { id: string; token: string } {
    const id = this.snowflake();
    const token = `itoken-${id}`;
    const channelId = options.channelId ?? this.channelId;
    const user =
      options.user ?? this.users.get("1100000000000000001") ?? this.user("1100000000000000001");
    this.interactions.set(token, { id, token, channelId });
    const guildId = this.guildOfChannel(channelId);
    this.dispatch("INTERACTION_CREATE", {
      id,
      application_id: this.applicationId,
      type: 2,
      token,
      version: 1,
      data: { id: this.snowflake(), name: options.name, type: 1, options: options.options ?? [] },
      guild_id: guildId,
      channel_id: channelId,
      channel: this.channel(channelId),
      member: this.member(user, options.permissions ?? MEMBER_PERMISSIONS),
      app_permissions: MEMBER_PERMISSIONS,
      locale: "en-US",
      guild_locale: "en-US",
      entitlements: [],
      authorizing_integration_owners: { "0": guildId },
      context: 0,
      attachment_size_limit: 26_214_400,
    });
    return { id, token };
  }

  /** A person (or bot) adds a reaction; `withMember: false` sends it as for an uncached user. */
  reactionAdd(options: {
    messageId: string;
    userId: string;
    emoji: string | { id: string; name: string };
    channelId?: string;
    withMember?: boolean;
  }): void {
    const user = this.users.get(options.userId) ?? this.user(options.userId);
    this.setReaction(options.messageId, emojiKey(options.emoji), options.userId, true);
    const channelId = options.channelId ?? this.channelId;
    this.dispatch("MESSAGE_REACTION_ADD", {
      user_id: options.userId,
      channel_id: channelId,
      message_id: options.messageId,
      guild_id: this.guildOfChannel(channelId),
      emoji: typeof options.emoji === "string" ? { id: null, name: options.emoji } : options.emoji,
      burst: false,
      burst_colors: [],
      type: 0,
      message_author_id: this.botUser.id,
      ...(options.withMember === false ? {} : { member: this.member(user, MEMBER_PERMISSIONS) }),
    });
  }

  reactionRemove(options: {
    messageId: string;
    userId: string;
    emoji: string;
    channelId?: string;
  }): void {
    this.setReaction(options.messageId, options.emoji, options.userId, false);
    const channelId = options.channelId ?? this.channelId;
    this.dispatch("MESSAGE_REACTION_REMOVE", {
      user_id: options.userId,
      channel_id: channelId,
      message_id: options.messageId,
      guild_id: this.guildOfChannel(channelId),
      emoji: { id: null, name: options.emoji },
      burst: false,
      type: 0,
    });
  }

  /** A bot message already in a channel (one posted before the test), as channel.send() makes. */
  postMessage(channelId: string = this.channelId, content = "an image"): StoredMessage {
    const message = this.storeMessage(this.snowflake(), channelId, { content }, []);
    message.type = 0;
    delete message.webhook_id;
    return message;
  }

  /** Changes the reaction state only (no gateway event): what happens while nobody listens. */
  setReaction(messageId: string, emoji: string, userId: string, added: boolean): void {
    let byEmoji = this.reactions.get(messageId);
    if (byEmoji === undefined) {
      byEmoji = new Map();
      this.reactions.set(messageId, byEmoji);
    }
    let users = byEmoji.get(emoji);
    if (users === undefined) {
      users = new Set();
      byEmoji.set(emoji, users);
    }
    if (added) users.add(userId);
    else users.delete(userId);
    if (users.size === 0) byEmoji.delete(emoji);
  }

  /** A message's `reactions` as Discord's message object carries them (counts, and `me`). */
  reactionCounts(messageId: string): Record<string, unknown>[] {
    return [...(this.reactions.get(messageId) ?? new Map<string, Set<string>>())].map(
      ([key, users]) => {
        const [name, id = null] = key.split(":");
        return {
          count: users.size,
          count_details: { burst: 0, normal: users.size },
          me: users.has(this.botUser.id),
          me_burst: false,
          burst_colors: [],
          emoji: { id, name },
        };
      },
    );
  }

  /** The users with `emoji` on a message, sorted by id (Discord's order, which `after` uses). */
  reactionUsers(messageId: string, emoji: string): string[] {
    return [...(this.reactions.get(messageId)?.get(emoji) ?? [])].sort(bySnowflake);
  }

  /**
   * Closes every gateway connection with a resumable code (4000), as a network blip or a
   * Discord restart does: the client reconnects and RESUMEs its session.
   */
  dropConnections(): void {
    for (const socket of this.sockets) socket.close(4000, "Unknown error");
  }

  // ---- gateway ----

  private onConnection(socket: WebSocket, req: IncomingMessage): void {
    this.gatewayQueries.push(req.url ?? "");
    this.sockets.add(socket);
    this.sequence.set(socket, 0);
    socket.on("close", () => {
      this.sockets.delete(socket);
      this.emit("disconnect");
    });
    socket.on("message", (raw) => {
      const payload = JSON.parse(String(raw)) as GatewayPayload;
      this.onGateway(socket, payload);
    });
    this.send(socket, { op: 10, d: { heartbeat_interval: 41_250 } });
  }

  private onGateway(socket: WebSocket, payload: GatewayPayload): void {
    switch (payload.op) {
      case 1:
        this.send(socket, { op: 11, d: null });
        return;
      case 2: {
        const d = payload.d as {
          token: string;
          intents: number;
          compress: unknown;
          shard?: [number, number];
        };
        const shard = d.shard ?? [0, 1];
        this.identifies.push({ token: d.token, intents: d.intents, compress: d.compress, shard });
        if (d.token !== this.token) {
          socket.close(4004, "Authentication failed.");
          return;
        }
        const [shardId, shardCount] = shard;
        if (!(shardCount >= 1 && shardId >= 0 && shardId < shardCount)) {
          socket.close(4010, "Invalid shard.");
          return;
        }
        this.shardOf.set(socket, shard);
        const guilds = this.guilds.filter((guild) => guildShard(guild.id, shardCount) === shardId);
        const sessionId = `session-${this.identifies.length}`;
        this.send(socket, {
          op: 0,
          t: "READY",
          d: {
            v: 10,
            user: { ...this.botUser, verified: true, mfa_enabled: false, flags: 0 },
            guilds: guilds.map((guild) => ({ id: guild.id, unavailable: true })),
            session_id: sessionId,
            resume_gateway_url: this.gatewayUrl,
            shard,
            application: { id: this.applicationId, flags: 0 },
            private_channels: [],
            relationships: [],
            presences: [],
            guild_join_requests: [],
            geo_ordered_rtc_regions: [],
            user_settings: {},
          },
        });
        for (const guild of guilds) {
          this.send(socket, { op: 0, t: "GUILD_CREATE", d: this.guild(guild.id, guild.channelId) });
        }
        this.emit("identify");
        return;
      }
      case 6:
        this.send(socket, { op: 0, t: "RESUMED", d: {} });
        return;
      default:
        return;
    }
  }

  private send(socket: WebSocket, payload: GatewayPayload): void {
    if (payload.op === 0) {
      const s = (this.sequence.get(socket) ?? 0) + 1;
      this.sequence.set(socket, s);
      payload.s = s;
    } else {
      payload.s = null;
      payload.t = null;
    }
    socket.send(JSON.stringify(payload));
  }

  private channel(id: string) {
    return {
      id,
      type: 0,
      guild_id: this.guildOfChannel(id),
      name: id === this.channelId ? "imagine" : `channel-${id.slice(-4)}`,
      position: 0,
      permission_overwrites: [],
      nsfw: false,
      parent_id: null,
      topic: null,
      last_message_id: null,
      rate_limit_per_user: 0,
      flags: 0,
    };
  }

  private member(user: FakeUser, permissions: string) {
    return {
      user,
      roles: [],
      nick: null,
      avatar: null,
      joined_at: "2024-01-01T00:00:00.000Z",
      premium_since: null,
      deaf: false,
      mute: false,
      pending: false,
      flags: 0,
      communication_disabled_until: null,
      permissions,
    };
  }

  private guild(guildId: string, channelId: string) {
    return {
      id: guildId,
      name: "Fake Guild",
      icon: null,
      splash: null,
      discovery_splash: null,
      banner: null,
      description: null,
      owner_id: "1100000000000000999",
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: [
        {
          id: guildId,
          name: "@everyone",
          permissions: MEMBER_PERMISSIONS,
          position: 0,
          color: 0,
          hoist: false,
          managed: false,
          mentionable: false,
          flags: 0,
        },
      ],
      emojis: [],
      stickers: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      public_updates_channel_id: null,
      safety_alerts_channel_id: null,
      vanity_url_code: null,
      premium_tier: 0,
      premium_progress_bar_enabled: false,
      preferred_locale: "en-US",
      nsfw_level: 0,
      max_video_channel_users: 25,
      joined_at: "2024-01-01T00:00:00.000Z",
      large: false,
      unavailable: false,
      member_count: 2,
      voice_states: [],
      members: [],
      channels: [this.channel(channelId)],
      threads: [],
      presences: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  // ---- REST ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const path = url.pathname.replace(/^\/api/, "").replace(/^\/v\d+/, "");
    const raw = await readBody(req);
    const { json, files } = await parseBody(req.headers["content-type"], raw);
    const call: RecordedCall = {
      index: this.calls.length,
      method: req.method ?? "GET",
      path,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      json,
      files,
      status: 0,
    };
    const { status, body } = this.route(call);
    call.status = status;
    this.calls.push(call);
    if (body === undefined) {
      res.writeHead(status);
      res.end();
    } else {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    }
    this.emit("call", call);
  }

  private route(call: RecordedCall): { status: number; body?: unknown } {
    const { method, path } = call;
    const segments = path
      .split("/")
      .filter(Boolean)
      .map((segment) => (segment === "%40original" ? "@original" : segment));
    const authorized = call.headers.authorization === `Bot ${this.token}`;
    const unauthorized = { status: 401, body: { message: "401: Unauthorized", code: 0 } };
    const notFound = (message = "404: Not Found", code = 0) => ({
      status: 404,
      body: { message, code },
    });

    // Interaction callback and webhook: authorised by the interaction token, not the bot token.
    if (method === "POST" && segments[0] === "interactions" && segments[3] === "callback") {
      const state = this.interactions.get(segments[2] ?? "");
      if (!state || state.id !== segments[1]) return notFound("Unknown interaction", 10062);
      if (state.originalId) {
        return {
          status: 400,
          body: { message: "Interaction has already been acknowledged.", code: 40060 },
        };
      }
      const body = call.json as { type: number; data?: Record<string, unknown> };
      const message = this.storeMessage(
        this.snowflake(),
        state.channelId,
        {
          content: body.type === 5 ? "" : ((body.data?.content as string) ?? ""),
          flags: (body.data?.flags as number) ?? 0,
        },
        call.files,
      );
      state.originalId = message.id;
      return call.query.with_response === "true"
        ? {
            status: 200,
            body: {
              interaction: { id: state.id, type: 2 },
              resource: { type: body.type, message },
            },
          }
        : { status: 204 };
    }
    if (segments[0] === "webhooks" && segments[1] === this.applicationId) {
      const state = this.interactions.get(segments[2] ?? "");
      if (!state) return notFound("Unknown Webhook", 10015);
      if (segments.length === 3 && method === "POST") {
        const body = (call.json ?? {}) as Record<string, unknown>;
        const message = this.storeMessage(this.snowflake(), state.channelId, body, call.files);
        return { status: 200, body: message };
      }
      if (segments[3] === "messages") {
        const id = segments[4] === "@original" ? state.originalId : segments[4];
        const existing = id ? this.messages.get(id) : undefined;
        if (!existing || !id) return notFound("Unknown Message", 10008);
        if (method === "GET") return { status: 200, body: existing };
        if (method === "DELETE") {
          this.messages.delete(id);
          return { status: 204 };
        }
        if (method === "PATCH") {
          const body = (call.json ?? {}) as Record<string, unknown>;
          return {
            status: 200,
            body: this.storeMessage(id, state.channelId, body, call.files, existing),
          };
        }
      }
      return notFound();
    }

    if (!authorized) return unauthorized;

    if (method === "GET" && path === "/gateway/bot") {
      return {
        status: 200,
        body: {
          url: this.gatewayUrl,
          shards: this.recommendedShards,
          session_start_limit: {
            total: 1000,
            remaining: 999,
            reset_after: 14_400_000,
            max_concurrency: this.maxConcurrency,
          },
        },
      };
    }
    if (method === "GET" && path === "/gateway")
      return { status: 200, body: { url: this.gatewayUrl } };

    if (segments[0] === "channels") {
      const channelId = segments[1] ?? "";
      if (segments.length === 2 && method === "GET")
        return { status: 200, body: this.channel(channelId) };
      if (segments[2] === "messages") {
        if (segments.length === 3 && method === "POST") {
          // An ordinary bot message (type 0, no webhook), as channel.send() makes.
          const body = (call.json ?? {}) as Record<string, unknown>;
          const message = this.storeMessage(this.snowflake(), channelId, body, call.files);
          message.type = 0;
          delete message.webhook_id;
          return { status: 200, body: message };
        }
        const messageId = segments[3] ?? "";
        if (segments.length === 4 && method === "GET") {
          const message = this.messages.get(messageId);
          if (!message) return notFound("Unknown Message", 10008);
          const reactions = this.reactionCounts(messageId);
          return { status: 200, body: reactions.length > 0 ? { ...message, reactions } : message };
        }
        if (segments[4] === "reactions" && segments.length === 6 && method === "GET") {
          // GET …/reactions/{emoji}?after=&limit=: users with that reaction, by id, one page.
          if (!this.messages.has(messageId)) return notFound("Unknown Message", 10008);
          const emoji = decodeURIComponent(segments[5] ?? "");
          const limit = Number(call.query.limit ?? "25");
          if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
            return { status: 400, body: { message: "Invalid Form Body", code: 50035 } };
          }
          const after = call.query.after;
          const users = this.reactionUsers(messageId, emoji)
            .filter((id) => after === undefined || BigInt(id) > BigInt(after))
            .slice(0, limit)
            .map((id) => this.users.get(id) ?? this.user(id));
          return { status: 200, body: users };
        }
        if (segments[4] === "reactions" && segments.length === 7) {
          const emoji = decodeURIComponent(segments[5] ?? "");
          const target = segments[6] === "@me" ? this.botUser.id : (segments[6] ?? "");
          if (method === "PUT" && segments[6] === "@me") {
            if (this.echoReactions)
              this.reactionAdd({ messageId, userId: target, emoji, channelId });
            else this.setReaction(messageId, emoji, target, true);
            return { status: 204 };
          }
          if (method === "DELETE") {
            if (target !== this.botUser.id && this.forbidReactionRemoval) {
              return { status: 403, body: { message: "Missing Permissions", code: 50013 } };
            }
            if (this.echoReactions)
              this.reactionRemove({ messageId, userId: target, emoji, channelId });
            else this.setReaction(messageId, emoji, target, false);
            return { status: 204 };
          }
        }
      }
      return notFound();
    }
    if (segments[0] === "users" && method === "GET") {
      const user = segments[1] === "@me" ? this.botUser : this.users.get(segments[1] ?? "");
      return user ? { status: 200, body: user } : notFound("Unknown User", 10013);
    }
    if (segments[0] === "applications" && segments[1] === this.applicationId && method === "PUT") {
      const global = segments.length === 3 && segments[2] === "commands";
      const guild = segments.length === 5 && segments[2] === "guilds" && segments[4] === "commands";
      if (global || guild) {
        const commands = (call.json as Record<string, unknown>[]).map((command) => ({
          ...command,
          id: this.snowflake(),
          application_id: this.applicationId,
          version: this.snowflake(),
          ...(guild ? { guild_id: segments[3] } : {}),
        }));
        return { status: 200, body: commands };
      }
    }
    return notFound();
  }

  private storeMessage(
    id: string,
    channelId: string,
    body: Record<string, unknown>,
    files: RecordedFile[],
    existing?: StoredMessage,
  ): StoredMessage {
    const described =
      (body.attachments as { id: string | number; description?: string }[] | undefined) ?? [];
    const attachments =
      files.length > 0
        ? files.map((file, i) => ({
            id: this.snowflake(),
            filename: file.name,
            size: file.data.length,
            url: `https://cdn.fake/attachments/${channelId}/${id}/${file.name}`,
            proxy_url: `https://media.fake/attachments/${channelId}/${id}/${file.name}`,
            content_type: file.contentType,
            ...(described[i]?.description ? { description: described[i]?.description } : {}),
          }))
        : "attachments" in body
          ? []
          : ((existing?.attachments as unknown[]) ?? []);
    const message: StoredMessage = {
      type: 20,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      embeds: [],
      components: [],
      pinned: false,
      timestamp: new Date().toISOString(),
      edited_timestamp: existing ? new Date().toISOString() : null,
      author: this.botUser,
      webhook_id: this.applicationId,
      application_id: this.applicationId,
      guild_id: this.guildOfChannel(channelId),
      ...existing,
      ...("content" in body ? { content: body.content } : {}),
      ...("flags" in body && body.flags !== undefined ? { flags: body.flags } : {}),
      id,
      channel_id: channelId,
      attachments,
    };
    if (!("content" in message)) message.content = "";
    this.messages.set(id, message);
    return message;
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function parseBody(
  contentType: string | undefined,
  raw: Buffer,
): Promise<{ json?: unknown; files: RecordedFile[] }> {
  if (raw.length === 0) return { files: [] };
  if (contentType?.startsWith("multipart/form-data")) {
    const form = await new Response(raw, { headers: { "content-type": contentType } }).formData();
    let json: unknown;
    const files: RecordedFile[] = [];
    for (const [field, value] of form.entries()) {
      if (typeof value === "string") {
        if (field === "payload_json") json = JSON.parse(value);
      } else {
        files.push({
          field,
          name: value.name,
          contentType: value.type,
          data: Buffer.from(await value.arrayBuffer()),
        });
      }
    }
    return { json, files };
  }
  if (contentType?.includes("application/json"))
    return { json: JSON.parse(raw.toString("utf8")), files: [] };
  return { json: raw.toString("utf8"), files: [] };
}

function emojiKey(emoji: string | { id: string; name: string }): string {
  return typeof emoji === "string" ? emoji : `${emoji.name}:${emoji.id}`;
}

function bySnowflake(a: string, b: string): number {
  const difference = BigInt(a) - BigInt(b);
  return difference < 0n ? -1 : difference > 0n ? 1 : 0;
}

/** Discord's sharding rule: a guild's events go to shard (guild id >> 22) % shard count. */
export function guildShard(guildId: string, count: number): number {
  return Number((BigInt(guildId) >> 22n) % BigInt(count));
}
