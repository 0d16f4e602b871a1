/**
 * A fake Slack for the real Bolt app, on 127.0.0.1: the Web API methods the adapter uses, the
 * external upload URL, response_url endpoints and a Socket Mode WebSocket server.
 *
 * Web API (POST /api/<method>, form-urlencoded or JSON, `Authorization: Bearer <token>`; a
 * missing or unknown token is `not_authed`/`invalid_auth` as Slack answers):
 *   auth.test                      → the bot's user_id, bot_id, team_id
 *   chat.postMessage / chat.update → a message store with increasing ts; update of an unknown ts
 *                                    is message_not_found; an image block whose slack_file is not
 *                                    a completed upload is invalid_blocks (as Slack answers)
 *   chat.delete, chat.postEphemeral
 *   files.getUploadURLExternal     → upload_url on this server + file_id (filename, length checked)
 *   POST /upload/<file_id>         → multipart body (field "file"/any file part) saved; 200 "OK"
 *   files.completeUploadExternal   → every id must have been uploaded with the promised length
 *   reactions.add                  → per message; already_reacted on a repeat
 *   reactions.get                  → the message's reactions with their users (all with full=true)
 *                                    from the per-message state that react() and reactions.add
 *                                    change; message_not_found for an unknown or deleted message
 *   apps.connections.open          → (app token) ws:// URL of the socket server
 * Anything else is `unknown_method`. Every call is recorded in `calls`, in arrival order.
 *
 * Socket Mode: on connection the server sends `hello`; `sendEnvelope` delivers a slash command or
 * an Events API payload and resolves with the client's acknowledgement for that envelope_id.
 *
 * Helpers sign requests the way Slack does: HMAC-SHA256 over `v0:<timestamp>:<body>`.
 */
import { createHmac, randomUUID } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type WebSocket, WebSocketServer } from "ws";
import { listenOnLoopback } from "./loopback.js";

export const FAKE_TEAM = "T0FAKE";
export const FAKE_BOT_USER = "U0BOT";
export const FAKE_BOT_ID = "B0BOT";

export interface ApiCall {
  method: string;
  params: Record<string, unknown>;
  /** The bearer token the call carried. */
  token?: string;
  at: number;
  /** What the fake answered. */
  response?: Record<string, unknown>;
}

export interface Upload {
  fileId: string;
  filename: string;
  length: number;
  bytes?: Buffer;
  completed: boolean;
  title?: string;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  text?: string;
  blocks?: unknown[];
  /** Who has which reaction, in the order they were first added (the bot's own included). */
  reactions: { name: string; users: string[] }[];
}

export interface ResponseUrlCall {
  id: string;
  body: Record<string, unknown>;
}

export interface SocketAck {
  envelope_id: string;
  payload?: unknown;
}

const JSON_PARAMS = new Set(["blocks", "files", "attachments"]);

export class FakeSlack extends EventEmitter {
  readonly calls: ApiCall[] = [];
  readonly uploads = new Map<string, Upload>();
  readonly messages = new Map<string, FakeMessage>();
  readonly responses: ResponseUrlCall[] = [];
  readonly acks: SocketAck[] = [];
  /** Raw upload POSTs (file id and bytes), in order. */
  readonly uploadPosts: { fileId: string; bytes: Buffer }[] = [];
  /**
   * Messages naming a slack_file answer invalid_blocks this many more times, as Slack does while
   * it is still processing a fresh upload.
   */
  fileNotReady = 0;
  /** Users that users.info reports as workspace admins. */
  readonly admins = new Set<string>();
  /** Tokens accepted by the Web API. */
  botToken = "xoxb-fake";
  appToken = "xapp-fake";
  /** Scripted failures: method → Slack error codes returned on its next calls. */
  private readonly failures = new Map<string, string[]>();
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  private nextTs = 1_700_000_000;
  private nextFile = 1;
  baseUrl = "";

  constructor() {
    super();
    this.server = createServer((req, res) => {
      this.route(req, res).catch((error) => {
        res.writeHead(500).end(String(error));
      });
    });
    this.wss = new WebSocketServer({ server: this.server, path: "/socket" });
    this.wss.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => {
        this.sockets.delete(socket);
        this.emit("disconnect");
      });
      socket.on("message", (data) => {
        const message = JSON.parse(String(data)) as SocketAck;
        this.acks.push(message);
        this.emit("ack", message);
      });
      socket.send(
        JSON.stringify({
          type: "hello",
          num_connections: 1,
          debug_info: { host: "fake", approximate_connection_time: 3600 },
          connection_info: { app_id: "A0FAKE" },
        }),
      );
      this.emit("socket", socket);
    });
  }

  async start(): Promise<this> {
    this.baseUrl = await listenOnLoopback(this.server);
    return this;
  }

  /** The Web API base for SLACK_API_URL / clientOptions.slackApiUrl. */
  get apiUrl(): string {
    return `${this.baseUrl}/api/`;
  }

  /** A response_url for a slash command payload. */
  responseUrl(): string {
    return `${this.baseUrl}/response/${randomUUID()}`;
  }

  /** Makes the next calls of `method` fail with these Slack error codes, in order. */
  failNext(method: string, ...errors: string[]): void {
    this.failures.set(method, [...(this.failures.get(method) ?? []), ...errors]);
  }

  callsOf(method: string): ApiCall[] {
    return this.calls.filter((call) => call.method === method);
  }

  /** Resolves once `predicate` holds for what was recorded (checked after every recording). */
  waitFor(predicate: (fake: this) => boolean): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!predicate(this)) return;
        this.off("recorded", check);
        resolve();
      };
      this.on("recorded", check);
    });
  }

  /** Resolves when `count` calls of `method` have been recorded in total. */
  waitForCalls(method: string, count: number): Promise<ApiCall[]> {
    return this.waitFor((fake) => fake.callsOf(method).length >= count).then(() =>
      this.callsOf(method),
    );
  }

  /**
   * Sends a Socket Mode envelope to every connected client and resolves with the first
   * acknowledgement for its envelope_id.
   */
  async sendEnvelope(
    type: "slash_commands" | "events_api" | "interactive",
    payload: unknown,
    extra: Record<string, unknown> = {},
  ): Promise<SocketAck> {
    const envelopeId = randomUUID();
    const acked = new Promise<SocketAck>((resolve) => {
      const listener = (ack: SocketAck) => {
        if (ack.envelope_id !== envelopeId) return;
        this.off("ack", listener);
        resolve(ack);
      };
      this.on("ack", listener);
    });
    const envelope = {
      envelope_id: envelopeId,
      type,
      payload,
      accepts_response_payload: type !== "events_api",
      ...(type === "events_api" ? { retry_attempt: 0, retry_reason: "" } : {}),
      ...extra,
    };
    for (const socket of this.sockets) socket.send(JSON.stringify(envelope));
    return acked;
  }

  /** Open Socket Mode connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Drops every Socket Mode connection, as a network failure does: the client reconnects. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.terminate();
  }

  /** Resolves once a Socket Mode client is connected. */
  connected(): Promise<void> {
    if (this.sockets.size > 0) return Promise.resolve();
    return once(this, "socket").then(() => undefined);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ------------------------------------------------------------------ routing

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.baseUrl);
    const body = await readBody(req);
    if (req.method === "POST" && url.pathname.startsWith("/api/")) {
      const method = url.pathname.slice("/api/".length);
      const params = parseParams(req.headers["content-type"], body);
      const token = bearer(req.headers.authorization) ?? stringOr(params.token);
      const call: ApiCall = { method, params, ...(token ? { token } : {}), at: Date.now() };
      this.record(call);
      const reply = this.answer(method, params, token);
      call.response = reply;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(reply));
      this.emit("recorded");
      return;
    }
    if (req.method === "POST" && url.pathname.startsWith("/upload/")) {
      const fileId = url.pathname.slice("/upload/".length);
      const upload = this.uploads.get(fileId);
      const bytes = await fileBytes(req.headers["content-type"], body);
      this.uploadPosts.push({ fileId, bytes });
      if (upload === undefined) {
        res.writeHead(404).end("no such upload");
      } else {
        upload.bytes = bytes;
        res.writeHead(200, { "content-type": "text/plain" }).end(`OK - ${bytes.length}`);
      }
      this.emit("recorded");
      return;
    }
    if (req.method === "POST" && url.pathname.startsWith("/response/")) {
      this.responses.push({
        id: url.pathname.slice("/response/".length),
        body: JSON.parse(body.toString("utf8") || "{}"),
      });
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      this.emit("recorded");
      return;
    }
    res.writeHead(404).end();
  }

  private record(call: ApiCall): void {
    this.calls.push(call);
  }

  private answer(
    method: string,
    params: Record<string, unknown>,
    token: string | undefined,
  ): Record<string, unknown> {
    const scripted = this.failures.get(method)?.shift();
    if (scripted !== undefined) return { ok: false, error: scripted };
    if (method === "apps.connections.open") {
      if (token !== this.appToken) return { ok: false, error: "invalid_auth" };
      return { ok: true, url: `${this.baseUrl.replace(/^http/, "ws")}/socket` };
    }
    if (token === undefined) return { ok: false, error: "not_authed" };
    if (token !== this.botToken) return { ok: false, error: "invalid_auth" };
    switch (method) {
      case "auth.test":
        return {
          ok: true,
          url: "https://fake.slack.com/",
          team: "Fake",
          user: "imagine-bot",
          team_id: FAKE_TEAM,
          user_id: FAKE_BOT_USER,
          bot_id: FAKE_BOT_ID,
          is_enterprise_install: false,
        };
      case "users.info": {
        const user = stringOr(params.user);
        if (user === undefined) return { ok: false, error: "user_not_found" };
        return { ok: true, user: { id: user, is_admin: this.admins.has(user), is_owner: false } };
      }
      case "chat.postMessage": {
        const channel = stringOr(params.channel);
        if (!channel) return { ok: false, error: "channel_not_found" };
        const invalid = this.checkBlocks(params.blocks);
        if (invalid) return invalid;
        const ts = `${this.nextTs++}.000100`;
        const message: FakeMessage = {
          channel,
          ts,
          ...(params.text !== undefined ? { text: String(params.text) } : {}),
          ...(Array.isArray(params.blocks) ? { blocks: params.blocks } : {}),
          reactions: [],
        };
        this.messages.set(`${channel}:${ts}`, message);
        return { ok: true, channel, ts, message: { ...message, type: "message" } };
      }
      case "chat.update": {
        const channel = stringOr(params.channel);
        const ts = stringOr(params.ts);
        const message = this.messages.get(`${channel}:${ts}`);
        if (!message) return { ok: false, error: "message_not_found" };
        const invalid = this.checkBlocks(params.blocks);
        if (invalid) return invalid;
        if (params.text !== undefined) message.text = String(params.text);
        if (params.blocks !== undefined) message.blocks = params.blocks as unknown[];
        return { ok: true, channel, ts, text: message.text };
      }
      case "chat.delete": {
        const key = `${stringOr(params.channel)}:${stringOr(params.ts)}`;
        if (!this.messages.delete(key)) return { ok: false, error: "message_not_found" };
        return { ok: true, channel: params.channel, ts: params.ts };
      }
      case "chat.postEphemeral":
        return { ok: true, message_ts: `${this.nextTs++}.000200` };
      case "files.getUploadURLExternal": {
        const filename = stringOr(params.filename);
        const length = Number(params.length);
        if (!filename || !Number.isInteger(length) || length <= 0) {
          return { ok: false, error: "invalid_arguments" };
        }
        const fileId = `F${String(this.nextFile++).padStart(8, "0")}`;
        this.uploads.set(fileId, { fileId, filename, length, completed: false });
        return { ok: true, upload_url: `${this.baseUrl}/upload/${fileId}`, file_id: fileId };
      }
      case "files.completeUploadExternal": {
        const files = params.files as { id: string; title?: string }[] | undefined;
        if (!Array.isArray(files) || files.length === 0) {
          return { ok: false, error: "invalid_arguments" };
        }
        for (const file of files) {
          const upload = this.uploads.get(file.id);
          if (!upload?.bytes || upload.bytes.length !== upload.length) {
            return { ok: false, error: "file_not_found" };
          }
        }
        return {
          ok: true,
          files: files.map((file) => {
            const upload = this.uploads.get(file.id) as Upload;
            upload.completed = true;
            if (file.title !== undefined) upload.title = file.title;
            return { id: file.id, name: upload.filename, title: file.title ?? upload.filename };
          }),
        };
      }
      case "reactions.add": {
        const key = `${stringOr(params.channel)}:${stringOr(params.timestamp)}`;
        const message = this.messages.get(key);
        if (!message) return { ok: false, error: "message_not_found" };
        const name = stringOr(params.name) ?? "";
        if (!this.react(message.channel, message.ts, FAKE_BOT_USER, name, true)) {
          return { ok: false, error: "already_reacted" };
        }
        return { ok: true };
      }
      case "reactions.get": {
        // Answers the message with every reaction and every user when full=true, as Slack does.
        const key = `${stringOr(params.channel)}:${stringOr(params.timestamp)}`;
        const message = this.messages.get(key);
        if (!message) return { ok: false, error: "message_not_found" };
        const full = params.full === true || params.full === "true";
        const reactions = message.reactions.map((r) => ({
          name: r.name,
          count: r.users.length,
          users: full ? [...r.users] : r.users.slice(0, 50),
        }));
        return {
          ok: true,
          type: "message",
          channel: message.channel,
          message: {
            type: "message",
            ts: message.ts,
            ...(reactions.length > 0 ? { reactions } : {}),
          },
        };
      }
      default:
        return { ok: false, error: "unknown_method" };
    }
  }

  /**
   * Adds or removes a person's reaction in the message's state (no event is sent: tests deliver
   * events themselves, or not at all for what happens while the bot is down). False when
   * nothing changed (already there, or not there to remove); throws for an unknown message.
   */
  react(channel: string, ts: string, user: string, name: string, added: boolean): boolean {
    const message = this.messages.get(`${channel}:${ts}`);
    if (!message) throw new Error(`fake slack: no message ${channel}:${ts}`);
    let reaction = message.reactions.find((r) => r.name === name);
    if (added) {
      if (reaction?.users.includes(user)) return false;
      if (reaction === undefined) {
        reaction = { name, users: [] };
        message.reactions.push(reaction);
      }
      reaction.users.push(user);
      return true;
    }
    if (!reaction?.users.includes(user)) return false;
    reaction.users = reaction.users.filter((u) => u !== user);
    if (reaction.users.length === 0)
      message.reactions.splice(message.reactions.indexOf(reaction), 1);
    return true;
  }

  /** An image block must name a completed upload (Slack: invalid_blocks otherwise). */
  private checkBlocks(blocks: unknown): Record<string, unknown> | undefined {
    if (!Array.isArray(blocks)) return undefined;
    for (const [index, block] of blocks.entries()) {
      const file = (block as { slack_file?: { id?: string } }).slack_file;
      if (file === undefined) continue;
      if (this.fileNotReady > 0) {
        this.fileNotReady--;
        return { ok: false, error: "invalid_blocks", errors: ["invalid slack file (processing)"] };
      }
      if (!file.id || !this.uploads.get(file.id)?.completed) {
        return {
          ok: false,
          error: "invalid_blocks",
          errors: [`invalid slack file [json-pointer:/blocks/${index}/slack_file]`],
        };
      }
    }
    return undefined;
  }
}

export async function startFakeSlack(): Promise<FakeSlack> {
  return new FakeSlack().start();
}

// -------------------------------------------------------------------- signing helpers

/** X-Slack-Signature for a body at a timestamp (seconds). */
export function slackSignature(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac("sha256", secret).update(`v0:${timestamp}:${body}`).digest("hex")}`;
}

export interface SignedPost {
  status: number;
  body: string;
  ms: number;
}

/** POSTs a body to the bot's HTTP receiver, signed like Slack (or deliberately not). */
export async function postSigned(
  url: string,
  body: string,
  options: {
    secret: string;
    contentType: "application/x-www-form-urlencoded" | "application/json";
    /** Seconds; default now. */
    timestamp?: number;
    /** Overrides the computed signature. */
    signature?: string;
    retryNum?: number;
  },
): Promise<SignedPost> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    "content-type": options.contentType,
    "x-slack-request-timestamp": String(timestamp),
    "x-slack-signature": options.signature ?? slackSignature(options.secret, timestamp, body),
  };
  if (options.retryNum !== undefined) {
    headers["x-slack-retry-num"] = String(options.retryNum);
    headers["x-slack-retry-reason"] = "http_timeout";
  }
  const started = performance.now();
  const response = await fetch(url, { method: "POST", headers, body });
  const text = await response.text();
  return { status: response.status, body: text, ms: performance.now() - started };
}

let triggers = 0;

/** A slash command's form body, as Slack sends it. */
export function slashCommandBody(fields: {
  text: string;
  user: string;
  channel: string;
  responseUrl: string;
  command?: string;
}): string {
  return new URLSearchParams({
    token: "verification-token-unused",
    team_id: FAKE_TEAM,
    team_domain: "fake",
    channel_id: fields.channel,
    channel_name: "general",
    user_id: fields.user,
    user_name: fields.user.toLowerCase(),
    command: fields.command ?? "/imagine",
    text: fields.text,
    api_app_id: "A0FAKE",
    is_enterprise_install: "false",
    response_url: fields.responseUrl,
    trigger_id: `${Date.now()}.${++triggers}.trigger`,
  }).toString();
}

/** The slash command payload object, as Socket Mode delivers it. */
export function slashCommandPayload(fields: {
  text: string;
  user: string;
  channel: string;
  responseUrl: string;
}): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(slashCommandBody(fields)));
}

/** An Events API callback carrying a reaction event. */
export function reactionEvent(fields: {
  kind: "reaction_added" | "reaction_removed";
  eventId: string;
  user: string;
  reaction: string;
  channel: string;
  ts: string;
  itemType?: string;
  /** When the reaction happened, as Slack writes it ("1700000000.123456"); default now. */
  eventTs?: string;
}): Record<string, unknown> {
  return {
    token: "verification-token-unused",
    team_id: FAKE_TEAM,
    api_app_id: "A0FAKE",
    type: "event_callback",
    event_id: fields.eventId,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [
      { team_id: FAKE_TEAM, user_id: FAKE_BOT_USER, is_bot: true, is_enterprise_install: false },
    ],
    event: {
      type: fields.kind,
      user: fields.user,
      reaction: fields.reaction,
      item_user: FAKE_BOT_USER,
      item: { type: fields.itemType ?? "message", channel: fields.channel, ts: fields.ts },
      event_ts: fields.eventTs ?? `${Date.now() / 1000}`,
    },
  };
}

// -------------------------------------------------------------------- parsing

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  return match?.[1];
}

function stringOr(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function parseParams(contentType: string | undefined, body: Buffer): Record<string, unknown> {
  const text = body.toString("utf8");
  if (contentType?.startsWith("application/json")) {
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  }
  const params: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    params[key] = JSON_PARAMS.has(key) ? JSON.parse(value) : value;
  }
  return params;
}

async function fileBytes(contentType: string | undefined, body: Buffer): Promise<Buffer> {
  if (!contentType?.startsWith("multipart/form-data")) return body;
  const form = await new Response(new Uint8Array(body), {
    headers: { "content-type": contentType },
  }).formData();
  for (const value of form.values()) {
    if (typeof value !== "string") return Buffer.from(await value.arrayBuffer());
  }
  return Buffer.alloc(0);
}
