/**
 * A fake AUTOMATIC1111 API on 127.0.0.1: POST /sdapi/v1/txt2img answers
 * `{images: [base64 PNG], parameters, info: "<json>"}` like stable-diffusion-webui --api, with
 * real image bytes from sharp; each render follows the next scripted ImageFakeReply.
 */

import type { ServerResponse } from "node:http";
import {
  HTML_PAGE,
  type ImageFakeScript,
  imageBody,
  isFailure,
  type RecordedHttpRequest,
  RecordingServer,
  ReplyQueue,
  sendFailure,
  sendJson,
} from "../image/images.js";

export interface Txt2ImgBody {
  prompt: string;
  negative_prompt: string;
  steps: number;
  cfg_scale: number;
  width: number;
  height: number;
  seed: number;
  sampler_name: string;
  batch_size: number;
  [key: string]: unknown;
}

export class FakeAutomatic1111 extends RecordingServer {
  private readonly replies = new ReplyQueue<RecordedHttpRequest>();
  /** sd_model_name in the info; set to undefined to answer like an old server without it. */
  modelName: string | undefined = "v2-1_768-ema-pruned";

  /** The txt2img requests, in arrival order. */
  get renders(): RecordedHttpRequest[] {
    return this.requests.filter((request) => request.path === "/sdapi/v1/txt2img");
  }

  script(...replies: ImageFakeScript<RecordedHttpRequest>[]): this {
    this.replies.push(...replies);
    return this;
  }

  otherwise(reply: ImageFakeScript<RecordedHttpRequest>): this {
    this.replies.otherwise(reply);
    return this;
  }

  protected async handle(request: RecordedHttpRequest, res: ServerResponse): Promise<void> {
    // The checkpoints the server has: what `imagine-bot doctor` asks for as a health call.
    if (request.method === "GET" && request.path === "/sdapi/v1/sd-models") {
      sendJson(res, 200, [{ title: "v2-1_768-ema-pruned.safetensors", model_name: "v2-1" }]);
      return;
    }
    if (request.method !== "POST" || request.path !== "/sdapi/v1/txt2img") {
      sendJson(res, 404, { detail: "Not Found" });
      return;
    }
    const body = request.body as Txt2ImgBody;
    const reply = this.replies.next(request);
    if (isFailure(reply)) {
      sendFailure(res, reply);
      return;
    }
    if (reply.kind === "notImage" && reply.as === "html") {
      // A reverse proxy's login page where the API should be.
      res.writeHead(200, { "content-type": "text/html" });
      res.end(HTML_PAGE);
      return;
    }
    const image = await imageBody(reply, body);
    const seed = reply.kind === "image" && reply.seed !== undefined ? reply.seed : body.seed;
    const info = {
      prompt: body.prompt,
      negative_prompt: body.negative_prompt,
      seed,
      all_seeds: [seed],
      width: body.width,
      height: body.height,
      sampler_name: body.sampler_name,
      cfg_scale: body.cfg_scale,
      steps: body.steps,
      ...(this.modelName === undefined ? {} : { sd_model_name: this.modelName }),
      sd_model_hash: "ad2a33c361",
    };
    sendJson(res, 200, {
      images: [image.bytes.toString("base64")],
      parameters: body,
      info: JSON.stringify(info),
    });
  }
}
