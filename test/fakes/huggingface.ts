/**
 * A fake Hugging Face Inference API on 127.0.0.1 for the real @huggingface/inference client.
 *
 * It answers what the v4 client sends for text generation: POST `…/v1/completions` (an endpoint
 * URL plus `/v1/completions`, or `/hf-inference/models/{id}/v1/completions` on the router) with
 * an OpenAI-style completion, and the Hub's `GET /api/models/{id}?expand[]=inferenceProviderMapping`
 * lookup that model-id mode makes first. Model-id mode reaches it through `fake.fetch`, which
 * rewrites huggingface.co and router.huggingface.co to this server — the client's own `fetch`
 * option, since it has no base-URL setting.
 *
 * Replies are scripted per completion request, in arrival order; a script entry may be a
 * function of the request for batches whose arrival order is not fixed.
 *
 * Text to image: any other POST (`/hf-inference/models/{id}` on the router, or an endpoint URL
 * as it is) is a text-to-image request, answered from its own script (`scriptImages`) with the
 * shared ImageFakeReply kinds: real image bytes (JPEG or PNG, as hf-inference sends them), or the
 * failures. For model-id mode, `serveModel(id, "text-to-image")` makes the Hub lookup map the
 * model to that task (the client refuses a model mapped to another task).
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  type ImageFakeScript,
  imageBody,
  isFailure,
  ReplyQueue,
  sendFailure,
} from "../image/images.js";
import { closeServer, listenOnLoopback } from "./loopback.js";

export type FakeReply =
  /** 200 with this continuation; finishReason and usage only when given. */
  | { kind: "text"; generatedText: string; finishReason?: string; completionTokens?: number }
  /** 503 `{"error":"Model … is currently loading","estimated_time":…}`. */
  | { kind: "loading"; estimatedTime: number }
  /** 429 with a Retry-After header (seconds or an HTTP date). */
  | { kind: "rateLimited"; retryAfter: string }
  | { kind: "error"; status: number; body?: unknown }
  /** Never answers, to exercise timeouts and aborts. */
  | { kind: "hang" };

export type FakeScript = FakeReply | ((request: RecordedRequest) => FakeReply);

export interface RecordedRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body, or undefined for a GET. */
  body: unknown;
  /** Resolves when the client closes the connection before a reply was sent (e.g. an abort). */
  abandoned: Promise<void>;
}

export class FakeHuggingFace {
  readonly requests: RecordedRequest[] = [];
  private readonly server: Server = createServer((req, res) => {
    this.handle(req, res).catch((error: unknown) => {
      sendJson(res, 400, { error: `fake could not read the request: ${String(error)}` });
    });
  });
  private readonly scripts: FakeScript[] = [];
  private fallback: FakeScript | undefined;
  private waiters: { count: number; resolve: () => void }[] = [];
  private baseUrl = "";
  private readonly imageReplies = new ReplyQueue<RecordedRequest>();
  private readonly modelTasks = new Map<string, string>();

  /** http://127.0.0.1:port, valid after start(). */
  get url(): string {
    return this.baseUrl;
  }

  /** Completion requests only (the Hub lookups and text-to-image requests left out). */
  get completions(): RecordedRequest[] {
    return this.requests.filter((request) => request.method === "POST" && isCompletion(request));
  }

  /** Text-to-image requests, in arrival order. */
  get textToImageRequests(): RecordedRequest[] {
    return this.requests.filter((request) => request.method === "POST" && !isCompletion(request));
  }

  /** The task the Hub lookup reports for a model id; "text-generation" when not set. */
  serveModel(modelId: string, task: "text-generation" | "text-to-image"): this {
    this.modelTasks.set(modelId, task);
    return this;
  }

  /** Replies for the next text-to-image requests, in order. */
  scriptImages(...replies: ImageFakeScript<RecordedRequest>[]): this {
    this.imageReplies.push(...replies);
    return this;
  }

  /** The text-to-image reply once the scripted ones are used up (otherwise a 500). */
  otherwiseImages(reply: ImageFakeScript<RecordedRequest>): this {
    this.imageReplies.otherwise(reply);
    return this;
  }

  async start(): Promise<this> {
    this.baseUrl = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  /** Replies for the next completion requests, in order. */
  script(...replies: FakeScript[]): this {
    this.scripts.push(...replies);
    return this;
  }

  /** The reply once the scripted ones are used up; without one, an unscripted request gets 500. */
  otherwise(reply: FakeScript): this {
    this.fallback = reply;
    return this;
  }

  /** Resolves once this many completion requests have arrived (event-driven, no polling). */
  waitForCompletions(count: number): Promise<void> {
    if (this.completions.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /** A fetch that sends Hugging Face's hosts to this server, for model-id mode. */
  readonly fetch: typeof fetch = (input, init) => {
    const original = new URL(input instanceof Request ? input.url : String(input));
    if (original.hostname === "huggingface.co" || original.hostname === "router.huggingface.co") {
      const redirected = new URL(`${original.pathname}${original.search}`, this.baseUrl);
      return globalThis.fetch(redirected, init);
    }
    return globalThis.fetch(input, init);
  };

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const abandoned = new Promise<void>((resolve) => {
      res.on("close", () => {
        if (!res.writableFinished) resolve();
      });
    });
    const recorded: RecordedRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: req.headers,
      body: text ? JSON.parse(text) : undefined,
      abandoned,
    };
    this.requests.push(recorded);

    const path = new URL(recorded.path, "http://fake").pathname;
    if (recorded.method === "GET" && path.startsWith("/api/models/")) {
      this.replyWithProviderMapping(res, decodeURIComponent(path.slice("/api/models/".length)));
      return;
    }
    if (recorded.method === "POST" && !path.endsWith("/completions")) {
      await this.replyWithImage(res, recorded);
      return;
    }
    if (recorded.method !== "POST") {
      sendJson(res, 404, { error: `fake has no route ${recorded.method} ${path}` });
      return;
    }

    const count = this.completions.length;
    this.waiters = this.waiters.filter((waiter) => {
      if (count < waiter.count) return true;
      waiter.resolve();
      return false;
    });
    const script = this.scripts.shift() ?? this.fallback;
    const reply = typeof script === "function" ? script(recorded) : script;
    this.reply(res, recorded, reply);
  }

  private replyWithProviderMapping(res: ServerResponse, modelId: string): void {
    const task = this.modelTasks.get(modelId) ?? "text-generation";
    sendJson(res, 200, {
      id: modelId,
      inferenceProviderMapping: {
        "hf-inference": { providerId: modelId, status: "live", task },
      },
    });
  }

  /** hf-inference text-to-image: `{inputs, parameters}` in, image bytes out. */
  private async replyWithImage(res: ServerResponse, request: RecordedRequest): Promise<void> {
    const reply = this.imageReplies.next(request);
    if (isFailure(reply)) {
      sendFailure(res, reply);
      return;
    }
    const parameters = (request.body as { parameters?: { width?: number; height?: number } })
      ?.parameters;
    const body = await imageBody(reply.kind === "image" ? { format: "jpeg", ...reply } : reply, {
      width: parameters?.width ?? 64,
      height: parameters?.height ?? 64,
    });
    res.writeHead(200, { "content-type": body.contentType, "content-length": body.bytes.length });
    res.end(body.bytes);
  }

  private reply(res: ServerResponse, request: RecordedRequest, reply: FakeReply | undefined): void {
    if (!reply) {
      sendJson(res, 500, { error: "fake Hugging Face: no reply scripted" });
      return;
    }
    switch (reply.kind) {
      case "text": {
        const model = (request.body as { model?: unknown } | undefined)?.model;
        sendJson(res, 200, {
          id: `cmpl-${this.requests.length}`,
          object: "text_completion",
          created: 1_700_000_000,
          model: typeof model === "string" ? model : "fake",
          choices: [
            {
              index: 0,
              text: reply.generatedText,
              ...(reply.finishReason ? { finish_reason: reply.finishReason } : {}),
            },
          ],
          ...(reply.completionTokens === undefined
            ? {}
            : { usage: { completion_tokens: reply.completionTokens } }),
        });
        return;
      }
      case "loading":
        sendJson(res, 503, {
          error: "Model fake/model is currently loading",
          estimated_time: reply.estimatedTime,
        });
        return;
      case "rateLimited":
        sendJson(res, 429, { error: "Rate limit reached" }, { "retry-after": reply.retryAfter });
        return;
      case "error":
        sendJson(res, reply.status, reply.body ?? { error: `fake error ${reply.status}` });
        return;
      case "hang":
        return;
    }
  }
}

function isCompletion(request: RecordedRequest): boolean {
  return new URL(request.path, "http://fake").pathname.endsWith("/completions");
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}
