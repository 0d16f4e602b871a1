import { afterEach, describe, expect, it, vi } from "vitest";
import { BotError } from "../src/core/errors.js";
import {
  isRetryableError,
  loadingEstimateMs,
  parseRetryAfter,
  RemoteCallError,
  type RetryEvent,
  retryDelayMs,
  sleepFor,
  withRetry,
  withTimeout,
} from "../src/core/retry.js";

/** mulberry32: a small seeded PRNG so jittered delays are reproducible. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function transient(
  message = "HTTP 503",
  extra: { retryAfterMs?: number; estimatedReadyMs?: number } = {},
) {
  return new RemoteCallError(message, { status: 503, retryable: true, ...extra });
}

/** A sleep that records its delays and returns at once. */
function recordingSleep() {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("withRetry", () => {
  it("retries transient failures with full-jitter exponential backoff from the seeded source", async () => {
    const { delays, sleep } = recordingSleep();
    let calls = 0;
    const result = await withRetry(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw transient();
        return "ok";
      },
      { retries: 5, baseDelayMs: 100, maxDelayMs: 10_000, sleep, random: seededRandom(42) },
    );
    expect(result).toBe("ok");
    expect(calls).toBe(4);
    const replay = seededRandom(42);
    expect(delays).toEqual([100, 200, 400].map((ceiling) => Math.floor(replay() * ceiling)));
    // Full jitter: each delay lies below its exponential ceiling.
    delays.forEach((delay, index) => {
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(100 * 2 ** index);
    });
  });

  it("caps the backoff ceiling at maxDelayMs", () => {
    const half = () => 0.5;
    const delays = [0, 1, 2, 3, 4, 5].map((attempt) =>
      retryDelayMs(transient(), attempt, { baseDelayMs: 100, maxDelayMs: 1000 }, half),
    );
    expect(delays).toEqual([50, 100, 200, 400, 500, 500]);
  });

  it("gives up after the configured retries and rethrows the last error", async () => {
    const { delays, sleep } = recordingSleep();
    const errors: RemoteCallError[] = [];
    const failing = withRetry(
      async () => {
        const error = transient(`failure ${errors.length + 1}`);
        errors.push(error);
        throw error;
      },
      { retries: 2, baseDelayMs: 10, maxDelayMs: 100, sleep, random: seededRandom(1) },
    );
    const thrown = await failing.catch((error: unknown) => error);
    expect(errors).toHaveLength(3);
    expect(thrown).toBe(errors[2]);
    expect(delays).toHaveLength(2);
  });

  it("does not retry an error that is not retryable", async () => {
    const { delays, sleep } = recordingSleep();
    let calls = 0;
    const notFound = new RemoteCallError("HTTP 404", { status: 404, retryable: false });
    await expect(
      withRetry(
        async () => {
          calls++;
          throw notFound;
        },
        { retries: 3, baseDelayMs: 10, maxDelayMs: 100, sleep },
      ),
    ).rejects.toBe(notFound);
    expect(calls).toBe(1);
    expect(delays).toEqual([]);
  });

  it("waits at least as long as Retry-After asks", async () => {
    const { delays, sleep } = recordingSleep();
    let calls = 0;
    await withRetry(
      async () => {
        if (calls++ === 0) throw transient("HTTP 429", { retryAfterMs: 3000 });
        return "ok";
      },
      { retries: 1, baseDelayMs: 100, maxDelayMs: 5000, sleep, random: seededRandom(7) },
    );
    expect(delays).toEqual([3000]);
  });

  it("gives up at once when Retry-After exceeds maxDelayMs", async () => {
    const { delays, sleep } = recordingSleep();
    const tooLong = transient("HTTP 429", { retryAfterMs: 60_000 });
    await expect(
      withRetry(
        async () => {
          throw tooLong;
        },
        { retries: 3, baseDelayMs: 100, maxDelayMs: 5000, sleep },
      ),
    ).rejects.toBe(tooLong);
    expect(delays).toEqual([]);
  });

  it("treats a model-loading estimate as a hint capped at maxDelayMs", () => {
    const zero = () => 0;
    const options = { baseDelayMs: 100, maxDelayMs: 5000 };
    expect(retryDelayMs(transient("503", { estimatedReadyMs: 1500 }), 0, options, zero)).toBe(1500);
    expect(retryDelayMs(transient("503", { estimatedReadyMs: 90_000 }), 0, options, zero)).toBe(
      5000,
    );
  });

  it("reports each retry to onRetry before waiting", async () => {
    const { delays, sleep } = recordingSleep();
    const events: RetryEvent[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        if (calls++ < 2) throw transient();
        return "ok";
      },
      {
        retries: 2,
        baseDelayMs: 100,
        maxDelayMs: 1000,
        sleep,
        random: seededRandom(3),
        onRetry: (event) => events.push(event),
      },
    );
    expect(events.map((event) => event.attempt)).toEqual([1, 2]);
    expect(events.map((event) => event.delayMs)).toEqual(delays);
  });

  it("aborts promptly during the wait, even when the injected sleep ignores the signal", async () => {
    const controller = new AbortController();
    const sleeping = deferred();
    let calls = 0;
    const running = withRetry(
      async () => {
        calls++;
        throw transient();
      },
      {
        retries: 5,
        baseDelayMs: 100,
        maxDelayMs: 1000,
        signal: controller.signal,
        sleep: () => {
          sleeping.resolve();
          return new Promise<void>(() => {});
        },
      },
    );
    await sleeping.promise;
    controller.abort();
    await expect(running).rejects.toMatchObject({ code: "ABORTED" });
    expect(calls).toBe(1);
  });

  it("does not call fn when the signal is already aborted", async () => {
    let calls = 0;
    await expect(
      withRetry(async () => calls++, {
        retries: 1,
        baseDelayMs: 1,
        maxDelayMs: 1,
        signal: AbortSignal.abort(),
      }),
    ).rejects.toMatchObject({ code: "ABORTED" });
    expect(calls).toBe(0);
  });

  it("reports an abort during the call as ABORTED instead of retrying the failure it caused", async () => {
    const controller = new AbortController();
    const started = deferred();
    const { delays, sleep } = recordingSleep();
    let calls = 0;
    const running = withRetry(
      (_attempt) =>
        new Promise<never>((_, reject) => {
          calls++;
          started.resolve();
          controller.signal.addEventListener("abort", () => reject(new Error("socket closed")));
        }),
      { retries: 3, baseDelayMs: 1, maxDelayMs: 1, signal: controller.signal, sleep },
    );
    await started.promise;
    controller.abort();
    await expect(running).rejects.toMatchObject({ code: "ABORTED" });
    expect(calls).toBe(1);
    expect(delays).toEqual([]);
  });
});

describe("withTimeout", () => {
  it("aborts the inner call after ms and throws a retryable RemoteCallError", async () => {
    vi.useFakeTimers();
    let innerSignal: AbortSignal | undefined;
    const running = withTimeout(
      (signal) => {
        innerSignal = signal;
        return new Promise<never>(() => {});
      },
      1000,
      undefined,
      "Hugging Face model org/gpt2",
    );
    const outcome = expect(running).rejects.toSatisfy(
      (error) =>
        error instanceof RemoteCallError &&
        error.code === "REMOTE_FAILED" &&
        error.retryable &&
        error.message === "Hugging Face model org/gpt2 timed out after 1000 ms",
    );
    await vi.advanceTimersByTimeAsync(999);
    expect(innerSignal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await outcome;
    expect(innerSignal?.aborted).toBe(true);
    expect(innerSignal?.reason).toBeInstanceOf(RemoteCallError);
  });

  it("throws ABORTED and aborts the inner call when the parent signal aborts", async () => {
    vi.useFakeTimers();
    const parent = new AbortController();
    let innerSignal: AbortSignal | undefined;
    const running = withTimeout(
      (signal) => {
        innerSignal = signal;
        return new Promise<never>(() => {});
      },
      1000,
      parent.signal,
    );
    parent.abort();
    await expect(running).rejects.toMatchObject({ code: "ABORTED" });
    expect(innerSignal?.aborted).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("returns the result and clears its timer", async () => {
    vi.useFakeTimers();
    await expect(withTimeout(async () => 42, 1000)).resolves.toBe(42);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("passes the inner call's own error through", async () => {
    const failure = new Error("bad request");
    await expect(
      withTimeout(async () => {
        throw failure;
      }, 1000),
    ).rejects.toBe(failure);
  });

  it("does not start when the parent signal is already aborted", async () => {
    let calls = 0;
    await expect(withTimeout(async () => calls++, 1000, AbortSignal.abort())).rejects.toMatchObject(
      { code: "ABORTED" },
    );
    expect(calls).toBe(0);
  });
});

describe("sleepFor", () => {
  it("resolves after the delay", async () => {
    vi.useFakeTimers();
    let done = false;
    const sleeping = sleepFor(500).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(499);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await sleeping;
    expect(done).toBe(true);
  });

  it("rejects with ABORTED as soon as the signal aborts and clears its timer", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const sleeping = sleepFor(60_000, controller.signal);
    controller.abort();
    await expect(sleeping).rejects.toMatchObject({ code: "ABORTED" });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");

  it.each([
    ["120", 120_000],
    [" 3 ", 3000],
    ["0", 0],
    ["Wed, 01 Jan 2025 00:00:30 GMT", 30_000],
    ["Tue, 31 Dec 2024 23:59:00 GMT", 0],
    ["soon", undefined],
    ["-5", undefined],
    ["", undefined],
    [null, undefined],
    [undefined, undefined],
  ])("%j → %j ms", (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe("loadingEstimateMs", () => {
  it("reads Hugging Face's estimated_time in seconds", () => {
    expect(loadingEstimateMs({ error: "Model x is currently loading", estimated_time: 20.5 })).toBe(
      20_500,
    );
    expect(loadingEstimateMs({ error: "Model x is currently loading" })).toBeUndefined();
    expect(loadingEstimateMs("Service Unavailable")).toBeUndefined();
  });
});

describe("isRetryableError", () => {
  const withCause = (message: string, cause: unknown) => new TypeError(message, { cause });
  const coded = (code: string) => Object.assign(new Error(code), { code });

  it.each<[string, unknown, boolean]>([
    ["a retryable RemoteCallError", transient(), true],
    ["a final RemoteCallError", new RemoteCallError("HTTP 401", { retryable: false }), false],
    ["HTTP 429", { status: 429 }, true],
    ["HTTP 500", { status: 500 }, true],
    ["HTTP 503", { statusCode: 503 }, true],
    ["HTTP 502 on a response", { response: { status: 502 } }, true],
    ["HTTP 504 on an httpResponse", { httpResponse: { status: 504 } }, true],
    ["HTTP 404", { status: 404 }, false],
    ["HTTP 400", { status: 400 }, false],
    ["fetch failed (ECONNREFUSED)", withCause("fetch failed", coded("ECONNREFUSED")), true],
    ["fetch failed without a code", new TypeError("fetch failed"), true],
    ["ECONNRESET", coded("ECONNRESET"), true],
    ["a model that is loading", new Error("Model org/gpt2 is currently loading"), true],
    ["an AbortError", new DOMException("aborted", "AbortError"), false],
    ["an ABORTED BotError", new BotError("ABORTED", "cancelled"), false],
    ["a programming error", new TypeError("x is not a function"), false],
    ["a non-error", "boom", false],
  ])("%s → %s", (_name, error, expected) => {
    expect(isRetryableError(error)).toBe(expected);
  });
});
