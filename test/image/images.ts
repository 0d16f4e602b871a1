/**
 * What the fake image servers and the image tests share: real PNG and JPEG bytes made with
 * sharp, and the scripted replies every fake understands, so that one contract suite can drive
 * all of them the same way.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import sharp from "sharp";
import { closeServer, listenOnLoopback } from "../fakes/loopback.js";

/** Noisy pixels, so the compressed data is large enough that cutting it in half truncates IDAT. */
export async function makeImage(
  format: "png" | "jpeg",
  width: number,
  height: number,
): Promise<Buffer> {
  const image = sharp({
    create: {
      width,
      height,
      channels: 3,
      background: { r: 40, g: 90, b: 160 },
      noise: { type: "gaussian", mean: 128, sigma: 40 },
    },
  });
  return format === "png" ? image.png().toBuffer() : image.jpeg({ quality: 80 }).toBuffer();
}

/**
 * A scripted answer to one render. Each fake applies it where its API would fail: the HTTP
 * errors, hang and reset to the request that starts the render (ComfyUI: POST /prompt), the
 * body kinds to where the image comes from (ComfyUI: GET /view).
 */
export type ImageFakeReply =
  /** A real image; size defaults to the requested one. `seed` and `model` go into A1111's info. */
  | { kind: "image"; format?: "png" | "jpeg"; width?: number; height?: number; seed?: number }
  /** 429 with a Retry-After header (seconds or an HTTP date). */
  | { kind: "rateLimited"; retryAfter: string }
  /** 503 `{"error":"Model … is currently loading","estimated_time":…}`. */
  | { kind: "loading"; estimatedTime: number }
  | { kind: "error"; status: number; body?: unknown }
  /** Never answers. */
  | { kind: "hang" }
  /** Drops the connection without an answer (a network error). */
  | { kind: "reset" }
  /** 200 with the first half of a real PNG. */
  | { kind: "truncated" }
  /** 200 with an HTML page or a JSON object where the image should be. */
  | { kind: "notImage"; as: "html" | "json" };

export type ImageFakeScript<R> = ImageFakeReply | ((request: R) => ImageFakeReply);

/** The scripted replies of one fake: in order, then the fallback, then a 500. */
export class ReplyQueue<R> {
  private readonly queue: ImageFakeScript<R>[] = [];
  private fallback: ImageFakeScript<R> | undefined;

  push(...replies: ImageFakeScript<R>[]): void {
    this.queue.push(...replies);
  }

  otherwise(reply: ImageFakeScript<R>): void {
    this.fallback = reply;
  }

  next(request: R): ImageFakeReply {
    const script = this.queue.shift() ?? this.fallback;
    if (script === undefined)
      return { kind: "error", status: 500, body: { error: "no reply scripted" } };
    return typeof script === "function" ? script(request) : script;
  }
}

export const HTML_PAGE =
  "<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body></html>";

/** Answers a failure kind (not "image") the way a typical server would. */
export function sendFailure(res: ServerResponse, reply: ImageFakeReply): void {
  switch (reply.kind) {
    case "rateLimited":
      sendJson(res, 429, { error: "Rate limit reached" }, { "retry-after": reply.retryAfter });
      return;
    case "loading":
      sendJson(res, 503, {
        error: "Model fake/model is currently loading",
        estimated_time: reply.estimatedTime,
      });
      return;
    case "error":
      sendJson(res, reply.status, reply.body ?? { error: `fake error ${reply.status}` });
      return;
    case "hang":
      return;
    case "reset":
      res.socket?.destroy();
      return;
    default:
      throw new Error(`sendFailure cannot send ${reply.kind}`);
  }
}

/** Sends the bytes an image-kind reply stands for (image, truncated, notImage). */
export async function sendImageBody(
  res: ServerResponse,
  reply: ImageFakeReply,
  requested: { width: number; height: number },
): Promise<void> {
  const body = await imageBody(reply, requested);
  res.writeHead(200, { "content-type": body.contentType, "content-length": body.bytes.length });
  res.end(body.bytes);
}

/** The body of an image-kind reply and its content type. */
export async function imageBody(
  reply: ImageFakeReply,
  requested: { width: number; height: number },
): Promise<{ bytes: Buffer; contentType: string }> {
  switch (reply.kind) {
    case "image": {
      const format = reply.format ?? "png";
      const bytes = await makeImage(
        format,
        reply.width ?? requested.width,
        reply.height ?? requested.height,
      );
      return { bytes, contentType: `image/${format}` };
    }
    case "truncated": {
      const png = await makeImage("png", requested.width, requested.height);
      return { bytes: png.subarray(0, Math.floor(png.length / 2)), contentType: "image/png" };
    }
    case "notImage":
      return reply.as === "html"
        ? { bytes: Buffer.from(HTML_PAGE), contentType: "text/html; charset=utf-8" }
        : {
            bytes: Buffer.from(JSON.stringify({ message: "queued", image: null })),
            contentType: "application/json",
          };
    default:
      throw new Error(`imageBody has no body for ${reply.kind}`);
  }
}

export function isFailure(reply: ImageFakeReply): boolean {
  return ["rateLimited", "loading", "error", "hang", "reset"].includes(reply.kind);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** A Sleep that records each wait and returns at once. */
export function recordingSleep(): { delays: number[]; sleep: (ms: number) => Promise<void> } {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

export interface RecordedHttpRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body; undefined for an empty one. */
  body: unknown;
}

/** A 127.0.0.1 HTTP server on a free port that records every request before handling it. */
export abstract class RecordingServer {
  readonly requests: RecordedHttpRequest[] = [];
  private readonly server: Server = createServer((req, res) => {
    this.receive(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 400, { error: `fake failed: ${String(error)}` });
    });
  });
  private baseUrl = "";

  /** http://127.0.0.1:port, valid after start(). */
  get url(): string {
    return this.baseUrl;
  }

  async start(): Promise<this> {
    this.baseUrl = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  protected abstract handle(request: RecordedHttpRequest, res: ServerResponse): Promise<void>;

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const recorded: RecordedHttpRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: req.headers,
      body: text ? JSON.parse(text) : undefined,
    };
    this.requests.push(recorded);
    await this.handle(recorded, res);
  }
}
