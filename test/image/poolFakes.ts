/**
 * What the pool tests share: an AUTOMATIC1111 fake that can be switched down and that counts
 * the renders it runs at once, in-memory backends, and a pool built from config the way
 * deployments build it.
 */
import type { ServerResponse } from "node:http";
import type { Config } from "../../src/core/config.js";
import { type OpenImageBackendOptions, openImageBackend } from "../../src/core/image/backends.js";
import type { BackendPool, HealthChange } from "../../src/core/image/pool.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../../src/core/types.js";
import { FakeAutomatic1111 } from "../fakes/automatic1111.js";
import { imageConfig } from "./config.js";
import { type RecordedHttpRequest, sendJson } from "./images.js";

export class PoolFakeA1111 extends FakeAutomatic1111 {
  /** While true, every call (renders and the health call) answers 503 like a broken server. */
  down = false;
  /** How long each successful render takes (the fake GPU's time). */
  renderMs = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** Renders answered with an image. */
  served = 0;

  constructor() {
    super();
    this.otherwise({ kind: "image" });
  }

  protected override async handle(
    request: RecordedHttpRequest,
    res: ServerResponse,
  ): Promise<void> {
    if (this.down) {
      sendJson(res, 503, { error: "CUDA error: out of memory" });
      return;
    }
    if (request.path !== "/sdapi/v1/txt2img") return super.handle(request, res);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.renderMs > 0) await new Promise((resolve) => setTimeout(resolve, this.renderMs));
      await super.handle(request, res);
      if (res.statusCode === 200) this.served++;
    } finally {
      this.inFlight--;
    }
  }
}

export const SMALL_REQUEST: ImageRequest = {
  prompt: "a lighthouse at dusk, oil painting",
  width: 32,
  height: 32,
  steps: 20,
  guidance: 7.5,
  seed: 42,
};

type Members = NonNullable<Config["image"]["backends"]>;

/** A pool from image.backends; health calls off and long backoffs unless the test sets them. */
export function poolFromConfig(
  members: Members,
  pool: NonNullable<Config["image"]["pool"]> = {},
  options: OpenImageBackendOptions = {},
): BackendPool {
  const config = imageConfig({
    backend: null,
    timeoutMs: 10_000,
    backends: members,
    pool: { healthIntervalMs: 0, backoffBaseMs: 60_000, backoffMaxMs: 600_000, ...pool },
  });
  return openImageBackend(config, {}, options) as BackendPool;
}

/** Collects health changes and lets a test wait for the next one that matches. */
export function healthLog() {
  const changes: HealthChange[] = [];
  const waiting: { match: (c: HealthChange) => boolean; resolve: (c: HealthChange) => void }[] = [];
  return {
    changes,
    onHealthChange(change: HealthChange) {
      changes.push(change);
      for (const waiter of [...waiting]) {
        if (waiter.match(change)) {
          waiting.splice(waiting.indexOf(waiter), 1);
          waiter.resolve(change);
        }
      }
    },
    next(member: string, state: HealthChange["state"]): Promise<HealthChange> {
      return new Promise((resolve) => {
        waiting.push({ match: (c) => c.member === member && c.state === state, resolve });
      });
    },
  };
}

/** An in-memory backend that answers at once (or when `gate` resolves) and records requests. */
export function memoryBackend(name: string, gate?: () => Promise<void>) {
  const requests: ImageRequest[] = [];
  let started: () => void = () => {};
  const backend: ImageBackend = {
    name,
    async render(request): Promise<RenderedImage> {
      requests.push(request);
      started();
      if (gate) await gate();
      return {
        png: Buffer.from(name),
        width: request.width,
        height: request.height,
        model: name,
        seed: request.seed,
      };
    },
    async close() {},
  };
  return {
    backend,
    requests,
    /** Resolves when the next render has started. */
    nextStart: () =>
      new Promise<void>((resolve) => {
        started = resolve;
      }),
  };
}
