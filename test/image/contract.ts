/**
 * One contract every ImageBackend passes, run from each backend's test file against its fake
 * server (as keyv's test-suite and hono's common.case.test.ts do): the same scripted replies, the
 * same expectations. Backend-specific wire details (request bodies, polling) are tested beside
 * each backend.
 */

import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BotError, UserError } from "../../src/core/errors.js";
import { BackendBusyError } from "../../src/core/image/http.js";
import { isPng } from "../../src/core/image/png.js";
import { RemoteCallError } from "../../src/core/retry.js";
import type { ImageBackend, ImageRequest } from "../../src/core/types.js";
import type { ImageFakeReply } from "./images.js";

/** The part of a fake the contract drives. */
export interface ContractFake {
  script(...replies: ImageFakeReply[]): unknown;
  /** Requests that started a render attempt so far. */
  renderCount(): number;
}

export interface ContractSubject {
  backend: ImageBackend;
  fake: ContractFake;
  /** Waits the backend asked its injected sleep for (retries; ComfyUI's polls too). */
  delays: number[];
  stop(): Promise<void>;
}

/** The subject for a backend talking to a scripted fake server that records its renders. */
export function scriptedSubject(
  backend: ImageBackend,
  delays: number[],
  fake: {
    script(...replies: ImageFakeReply[]): unknown;
    renders: unknown[];
    stop(): Promise<void>;
  },
): ContractSubject {
  return {
    backend,
    delays,
    fake: {
      script: (...replies) => fake.script(...replies),
      renderCount: () => fake.renders.length,
    },
    stop: () => fake.stop(),
  };
}

export type MakeBackendAndFake = (limits: {
  retries: number;
  timeoutMs: number;
}) => Promise<ContractSubject>;

export const CONTRACT_REQUEST: ImageRequest = {
  prompt: "a lighthouse at dusk, oil painting",
  negativePrompt: "blurry",
  width: 96,
  height: 64,
  steps: 20,
  guidance: 7.5,
  seed: 42,
};

export function imageBackendContract(name: string, make: MakeBackendAndFake): void {
  describe(`ImageBackend contract: ${name}`, () => {
    let subjects: ContractSubject[];

    beforeEach(() => {
      subjects = [];
    });

    afterEach(async () => {
      for (const subject of subjects) {
        await subject.backend.close();
        await subject.stop();
      }
    });

    async function subject(limits: Partial<{ retries: number; timeoutMs: number }> = {}) {
      const created = await make({ retries: 3, timeoutMs: 10_000, ...limits });
      subjects.push(created);
      return created;
    }

    async function failure(promise: Promise<unknown>): Promise<BotError> {
      const error = await promise.then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error, "the render should have failed").toBeInstanceOf(BotError);
      return error as BotError;
    }

    it("renders a decodable PNG and reports its size, model and seed", async () => {
      const { backend, fake } = await subject();
      fake.script({ kind: "image" });
      const image = await backend.render(CONTRACT_REQUEST);
      expect(isPng(image.png)).toBe(true);
      const metadata = await sharp(image.png).metadata();
      expect(metadata.format).toBe("png");
      expect([image.width, image.height]).toEqual([96, 64]);
      expect([metadata.width, metadata.height]).toEqual([96, 64]);
      expect(image.model.length).toBeGreaterThan(0);
      expect(Number.isSafeInteger(image.seed)).toBe(true);
      expect(backend.name).toBe(name.split(" ")[0]);
    });

    it("reports the decoded size, not the requested one", async () => {
      const { backend, fake } = await subject();
      fake.script({ kind: "image", width: 40, height: 24 });
      const image = await backend.render(CONTRACT_REQUEST);
      expect([image.width, image.height]).toEqual([40, 24]);
    });

    it("re-encodes a JPEG answer as PNG", async () => {
      const { backend, fake } = await subject();
      fake.script({ kind: "image", format: "jpeg" });
      const image = await backend.render(CONTRACT_REQUEST);
      expect(isPng(image.png)).toBe(true);
      expect((await sharp(image.png).metadata()).format).toBe("png");
      expect([image.width, image.height]).toEqual([96, 64]);
    });

    it("retries a 429 no sooner than its Retry-After", async () => {
      const { backend, fake, delays } = await subject();
      fake.script({ kind: "rateLimited", retryAfter: "2" }, { kind: "image" });
      const image = await backend.render(CONTRACT_REQUEST);
      expect(image.width).toBe(96);
      expect(fake.renderCount()).toBe(2);
      expect(Math.max(...delays)).toBeGreaterThanOrEqual(2_000);
    });

    it("retries 'model is loading', 5xx and dropped connections, then succeeds", async () => {
      const { backend, fake, delays } = await subject({ retries: 3 });
      fake.script(
        { kind: "loading", estimatedTime: 3 },
        { kind: "error", status: 502 },
        { kind: "reset" },
        { kind: "image" },
      );
      const image = await backend.render(CONTRACT_REQUEST);
      expect(image.height).toBe(64);
      expect(fake.renderCount()).toBe(4);
      // The loading estimate (3 s) is honoured as the wait before the second attempt.
      expect(delays).toContain(3_000);
    });

    it("gives up after the configured retries with an error naming the status", async () => {
      const { backend, fake } = await subject({ retries: 2 });
      fake.script(
        { kind: "error", status: 500 },
        { kind: "error", status: 500 },
        { kind: "error", status: 500 },
        { kind: "image" },
      );
      const error = await failure(backend.render(CONTRACT_REQUEST));
      expect(error).toBeInstanceOf(RemoteCallError);
      expect((error as RemoteCallError).status).toBe(500);
      expect(error.message).toMatch(/HTTP 500/);
      expect(fake.renderCount()).toBe(3);
    });

    it("does not retry a 400", async () => {
      const { backend, fake } = await subject();
      fake.script(
        { kind: "error", status: 400, body: { error: "bad request" } },
        { kind: "image" },
      );
      const error = await failure(backend.render(CONTRACT_REQUEST));
      expect((error as RemoteCallError).status).toBe(400);
      expect(fake.renderCount()).toBe(1);
    });

    it("gives up at once when Retry-After asks for longer than it may wait, saying when to come back", async () => {
      const { backend, fake } = await subject();
      fake.script({ kind: "rateLimited", retryAfter: "3600" }, { kind: "image" });
      const error = await failure(backend.render(CONTRACT_REQUEST));
      // A UserError: chat adapters show its message instead of "something went wrong".
      expect(error).toBeInstanceOf(BackendBusyError);
      expect(error).toBeInstanceOf(UserError);
      expect(error.code).toBe("BACKEND_BUSY");
      expect(error.message).toBe("The image server is busy; try again in about 60 minutes.");
      expect((error.cause as RemoteCallError).status).toBe(429);
      expect(fake.renderCount()).toBe(1);
    });

    it("is busy, in about a minute, when 'model is loading' outlasts the retries", async () => {
      const { backend, fake } = await subject({ retries: 1 });
      fake.script(
        { kind: "loading", estimatedTime: 20 },
        { kind: "loading", estimatedTime: 20 },
        { kind: "image" },
      );
      const error = await failure(backend.render(CONTRACT_REQUEST));
      expect(error).toBeInstanceOf(BackendBusyError);
      expect(error.message).toBe("The image server is busy; try again in about 1 minute.");
      expect((error.cause as RemoteCallError).status).toBe(503);
      expect(fake.renderCount()).toBe(2);
    });

    it("keeps a 429 without Retry-After and a 503 without a hint as failures with a status", async () => {
      const { backend, fake } = await subject({ retries: 0 });
      fake.script({ kind: "error", status: 429 }, { kind: "error", status: 503 });
      const first = await failure(backend.render(CONTRACT_REQUEST));
      expect(first).not.toBeInstanceOf(UserError);
      expect((first as RemoteCallError).status).toBe(429);
      const second = await failure(backend.render(CONTRACT_REQUEST));
      expect(second).not.toBeInstanceOf(UserError);
      expect((second as RemoteCallError).status).toBe(503);
    });

    it("times out a request that never answers", async () => {
      const { backend, fake } = await subject({ retries: 0, timeoutMs: 300 });
      fake.script({ kind: "hang" });
      const error = await failure(backend.render(CONTRACT_REQUEST));
      expect(error.message).toMatch(/timed out after 300 ms/);
    });

    it("retries after a timeout", async () => {
      const { backend, fake } = await subject({ retries: 1, timeoutMs: 300 });
      fake.script({ kind: "hang" }, { kind: "image" });
      const image = await backend.render(CONTRACT_REQUEST);
      expect(image.width).toBe(96);
      expect(fake.renderCount()).toBe(2);
    });

    for (const [label, reply] of [
      ["a truncated PNG", { kind: "truncated" }],
      ["an HTML page", { kind: "notImage", as: "html" }],
      ["a JSON body", { kind: "notImage", as: "json" }],
    ] as [string, ImageFakeReply][]) {
      it(`rejects ${label} instead of returning it, without retrying`, async () => {
        const { backend, fake } = await subject();
        fake.script(reply, { kind: "image" });
        const error = await failure(backend.render(CONTRACT_REQUEST));
        expect(error.code).toBe("REMOTE_FAILED");
        expect(error.message).toMatch(/not a decodable image|no image|not JSON/);
        expect(fake.renderCount()).toBe(1);
      });
    }

    it("stops when the request's signal aborts", async () => {
      const { backend, fake } = await subject();
      fake.script({ kind: "hang" });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const error = await failure(
        backend.render({ ...CONTRACT_REQUEST, signal: controller.signal }),
      );
      expect(error.code).toBe("ABORTED");
    });

    it("refuses to render once closed", async () => {
      const { backend } = await subject();
      await backend.close();
      await expect(backend.render(CONTRACT_REQUEST)).rejects.toBeInstanceOf(BotError);
    });
  });
}

/**
 * What every ImageBackend does whether or not a server is behind it: the local backend
 * (IMAGE_BACKEND=local) runs this part, as it has no HTTP to fail. `request` adapts
 * CONTRACT_REQUEST to what the backend can render quickly (the local stand-in model's size).
 */
export interface CoreContractSubject {
  backend: ImageBackend;
  /** Makes the next render succeed (a fake scripts an image; the local backend needs nothing). */
  willRender(): void;
  /** Makes the next render run until aborted (a fake hangs; the local backend is stopped from its step callback). */
  willRunLong(): void;
  request: ImageRequest;
  stop(): Promise<void>;
}

export function imageBackendCoreContract(
  name: string,
  make: () => Promise<CoreContractSubject>,
): void {
  describe(`ImageBackend core contract: ${name}`, () => {
    let subjects: CoreContractSubject[];

    beforeEach(() => {
      subjects = [];
    });

    afterEach(async () => {
      for (const subject of subjects) {
        await subject.backend.close();
        await subject.stop();
      }
    });

    async function subject() {
      const created = await make();
      subjects.push(created);
      return created;
    }

    it("renders a decodable PNG and reports its size, model and seed", async () => {
      const { backend, willRender, request } = await subject();
      willRender();
      const image = await backend.render(request);
      expect(isPng(image.png)).toBe(true);
      const metadata = await sharp(image.png).metadata();
      expect(metadata.format).toBe("png");
      expect([image.width, image.height]).toEqual([metadata.width, metadata.height]);
      expect(image.model.length).toBeGreaterThan(0);
      expect(image.seed).toBe(request.seed);
      expect(backend.name).toBe(name.split(" ")[0]);
    });

    it("stops with ABORTED when the request's signal aborts mid-render", async () => {
      const { backend, willRunLong, request } = await subject();
      willRunLong();
      const controller = new AbortController();
      // A remote fake hangs until the timer; a local render is stopped at its first step.
      const timer = setTimeout(() => controller.abort(), 100);
      const error = await backend
        .render({ ...request, signal: controller.signal, onStep: () => controller.abort() })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      clearTimeout(timer);
      expect(error).toBeInstanceOf(BotError);
      expect((error as BotError).code).toBe("ABORTED");
    });

    it("refuses to render once closed", async () => {
      const { backend, request } = await subject();
      await backend.close();
      await expect(backend.render(request)).rejects.toBeInstanceOf(BotError);
    });
  });
}
