/**
 * A fake ComfyUI server on 127.0.0.1: POST /prompt queues a workflow and answers a prompt_id;
 * GET /history/{id} answers `{}` for the first `pendingPolls` polls and then the job with its
 * outputs (or an execution error); GET /view?filename=… serves the image; POST /queue records
 * deletions. Each render follows the next scripted ImageFakeReply: failures are sent on
 * POST /prompt, image bodies on GET /view.
 */

import type { ServerResponse } from "node:http";
import {
  type ImageFakeReply,
  type ImageFakeScript,
  imageBody,
  isFailure,
  type RecordedHttpRequest,
  RecordingServer,
  ReplyQueue,
  sendFailure,
  sendJson,
} from "../image/images.js";

type Graph = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

interface Job {
  id: string;
  graph: Graph;
  reply: ImageFakeReply;
  polls: number;
  /** An execution error to report in the history instead of outputs. */
  error?: string;
}

export class FakeComfyUI extends RecordingServer {
  private readonly replies = new ReplyQueue<RecordedHttpRequest>();
  private readonly jobs = new Map<string, Job>();
  /** History answers `{}` this many times before the job shows as finished. */
  pendingPolls = 1;
  /** Job ids removed through POST /queue {delete: […]}. */
  readonly deleted: string[] = [];
  private nextErrors: string[] = [];

  /** The POST /prompt requests, in arrival order. */
  get renders(): RecordedHttpRequest[] {
    return this.requests.filter((r) => r.method === "POST" && r.path === "/prompt");
  }

  get historyPolls(): RecordedHttpRequest[] {
    return this.requests.filter((r) => r.path.startsWith("/history/"));
  }

  get views(): RecordedHttpRequest[] {
    return this.requests.filter((r) => r.path.startsWith("/view"));
  }

  script(...replies: ImageFakeScript<RecordedHttpRequest>[]): this {
    this.replies.push(...replies);
    return this;
  }

  otherwise(reply: ImageFakeScript<RecordedHttpRequest>): this {
    this.replies.otherwise(reply);
    return this;
  }

  /** The next queued job fails while executing with this exception message. */
  failNextJob(message: string): this {
    this.nextErrors.push(message);
    return this;
  }

  protected async handle(request: RecordedHttpRequest, res: ServerResponse): Promise<void> {
    const url = new URL(request.path, "http://fake");
    if (request.method === "GET" && url.pathname === "/system_stats") {
      sendJson(res, 200, { system: { comfyui_version: "0.3.0" }, devices: [{ name: "cuda:0" }] });
      return;
    }
    if (request.method === "POST" && url.pathname === "/prompt") {
      const reply = this.replies.next(request);
      if (isFailure(reply)) {
        sendFailure(res, reply);
        return;
      }
      const graph = (request.body as { prompt: Graph }).prompt;
      const id = `job-${this.jobs.size + 1}`;
      const error = this.nextErrors.shift();
      this.jobs.set(id, { id, graph, reply, polls: 0, ...(error ? { error } : {}) });
      sendJson(res, 200, { prompt_id: id, number: this.jobs.size, node_errors: {} });
      return;
    }
    if (request.method === "GET" && url.pathname.startsWith("/history/")) {
      const job = this.jobs.get(decodeURIComponent(url.pathname.slice("/history/".length)));
      if (!job || job.polls++ < this.pendingPolls) {
        sendJson(res, 200, {});
        return;
      }
      sendJson(res, 200, { [job.id]: historyEntry(job) });
      return;
    }
    if (request.method === "GET" && url.pathname === "/view") {
      const job = this.jobs.get(
        (url.searchParams.get("filename") ?? "").replace(/_\d+_\.png$/, ""),
      );
      if (!job || url.searchParams.get("type") !== "output") {
        sendJson(res, 404, { error: "no such file" });
        return;
      }
      const body = await imageBody(job.reply, latentSize(job.graph));
      res.writeHead(200, { "content-type": body.contentType, "content-length": body.bytes.length });
      res.end(body.bytes);
      return;
    }
    if (request.method === "POST" && url.pathname === "/queue") {
      this.deleted.push(...((request.body as { delete?: string[] }).delete ?? []));
      sendJson(res, 200, {});
      return;
    }
    sendJson(res, 404, { error: `fake has no route ${request.method} ${url.pathname}` });
  }
}

function historyEntry(job: Job): unknown {
  const saveNode = Object.entries(job.graph).find(([, node]) => node.class_type === "SaveImage");
  const messages: unknown[] = [["execution_start", { prompt_id: job.id }]];
  if (job.error) {
    messages.push([
      "execution_error",
      { prompt_id: job.id, node_type: "KSampler", exception_message: job.error },
    ]);
  }
  return {
    prompt: [1, job.id, job.graph, {}, saveNode ? [saveNode[0]] : []],
    outputs:
      job.error || !saveNode
        ? {}
        : {
            [saveNode[0]]: {
              images: [{ filename: `${job.id}_00001_.png`, subfolder: "", type: "output" }],
            },
          },
    status: {
      status_str: job.error ? "error" : "success",
      completed: !job.error,
      messages,
    },
  };
}

function latentSize(graph: Graph): { width: number; height: number } {
  for (const node of Object.values(graph)) {
    const { width, height } = node.inputs;
    if (typeof width === "number" && typeof height === "number") return { width, height };
  }
  return { width: 64, height: 64 };
}
