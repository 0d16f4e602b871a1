import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BotError, ConfigError } from "../../src/core/errors.js";
import {
  createRemoteGenerator,
  promptSeed,
  type RemoteGeneratorOptions,
} from "../../src/core/prompt/remote.js";
import type { Logger, PromptGenerator, SamplingSettings } from "../../src/core/types.js";
import { FakeHuggingFace } from "../fakes/huggingface.js";

const TOKEN = "hf_secretTestToken123";
const TAGS = { start: "<caption>", end: "</caption>" };
const SAMPLING: SamplingSettings = {
  temperature: 0.9,
  topK: 50,
  topP: 0.95,
  repetitionPenalty: 1.2,
};

let fake: FakeHuggingFace;
let generators: PromptGenerator[];
let sleeps: number[];

beforeEach(async () => {
  fake = await new FakeHuggingFace().start();
  generators = [];
  sleeps = [];
});

afterEach(async () => {
  await Promise.all(generators.map((generator) => generator.close()));
  await fake.stop();
});

/** An endpoint-mode generator aimed at the fake; sleeps are recorded, not waited. */
function generator(overrides: Partial<RemoteGeneratorOptions> = {}): PromptGenerator {
  const created = createRemoteGenerator({
    endpointUrl: `${fake.url}/endpoints/gpt2-laion`,
    token: TOKEN,
    tags: TAGS,
    maxNewTokens: 20,
    sampling: SAMPLING,
    timeoutMs: 10_000,
    retries: 0,
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
    ...overrides,
  });
  generators.push(created);
  return created;
}

function bodyOf(index: number): Record<string, unknown> {
  return fake.completions[index]?.body as Record<string, unknown>;
}

/** Every string reachable from value through own properties, including non-enumerable ones. */
function reachableStrings(value: unknown, seen = new Set<unknown>()): string[] {
  if (typeof value === "string") return [value];
  if (typeof value !== "object" || value === null || seen.has(value)) return [];
  seen.add(value);
  return Reflect.ownKeys(value).flatMap((key) =>
    reachableStrings((value as Record<PropertyKey, unknown>)[key], seen),
  );
}

async function failureOf(promise: Promise<unknown>): Promise<BotError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  if (!(error instanceof BotError)) throw new Error(`expected a BotError, got ${String(error)}`);
  return error;
}

describe("remote prompt generator: tagged and untagged semantics", () => {
  it("continues start tag + subject and cuts the prompt at the end tag", async () => {
    fake.script({
      kind: "text",
      generatedText: " on a cliff at sunset, oil painting</caption> stray words",
      finishReason: "stop",
      completionTokens: 9,
    });
    const prompts = await generator().generate({ subject: "a lighthouse", count: 1, seed: 1 });
    expect(bodyOf(0).prompt).toBe("<caption>a lighthouse");
    expect(bodyOf(0).stop).toEqual(["</caption>"]);
    expect(prompts).toEqual([
      { text: "a lighthouse on a cliff at sunset, oil painting", tokens: 9, complete: true },
    ]);
  });

  it("is complete when the server stripped the end tag but says it stopped on it", async () => {
    fake.script({ kind: "text", generatedText: " in fog, 4k", finishReason: "stop" });
    const [prompt] = await generator().generate({ subject: "a lighthouse", count: 1, seed: 1 });
    // No usage reported: the estimate is ⌈11 chars / 4⌉ plus one token for the stripped tag.
    expect(prompt).toEqual({ text: "a lighthouse in fog, 4k", tokens: 4, complete: true });
  });

  it("is incomplete when the length cap cut the caption, and strips stray start tags", async () => {
    fake.script({
      kind: "text",
      generatedText: " at dawn <caption>with gulls",
      finishReason: "length",
    });
    const [prompt] = await generator().generate({ subject: "a lighthouse", count: 1, seed: 1 });
    expect(prompt).toEqual({
      text: "a lighthouse at dawn with gulls",
      tokens: Math.ceil(" at dawn <caption>with gulls".length / 4),
      complete: false,
    });
  });

  it("cuts tag text the server let through before the word that holds it, and is not complete", async () => {
    fake.script({
      kind: "text",
      generatedText: " at dawn, trendingoftext|> art</caption>",
      finishReason: "stop",
    });
    const [prompt] = await generator().generate({ subject: "a lighthouse", count: 1, seed: 1 });
    expect(prompt?.text).toBe("a lighthouse at dawn,");
    expect(prompt?.complete).toBe(false);
  });

  it("sends the bare subject for untagged models, with no stop sequence, and is never complete", async () => {
    fake.script({
      kind: "text",
      generatedText: " on a cliff, trending on artstation",
      finishReason: "stop",
      completionTokens: 8,
    });
    const [prompt] = await generator({ tags: null }).generate({
      subject: "a lighthouse",
      count: 1,
      seed: 1,
    });
    expect(bodyOf(0).prompt).toBe("a lighthouse");
    expect(bodyOf(0)).not.toHaveProperty("stop");
    expect(prompt).toEqual({
      text: "a lighthouse on a cliff, trending on artstation",
      tokens: 8,
      complete: false,
    });
  });
});

describe("remote prompt generator: request parameters", () => {
  it("requests count prompts in parallel with distinct, deterministic seeds", async () => {
    fake.otherwise((request) => ({
      kind: "text",
      generatedText: ` seed ${(request.body as { seed: number }).seed}`,
    }));
    const remote = generator({ tags: null });
    const prompts = await remote.generate({ subject: "a fox", count: 4, seed: 7 });
    const expectedSeeds = [0, 1, 2, 3].map((index) => promptSeed(7, index));
    expect(new Set(expectedSeeds).size).toBe(4);
    // Each prompt is matched to its own request, whatever order the server answered in.
    expect(prompts.map((prompt) => prompt.text)).toEqual(
      expectedSeeds.map((seed) => `a fox seed ${seed}`),
    );
    expect(
      fake.completions.map((request) => (request.body as { seed: number }).seed).sort(),
    ).toEqual([...expectedSeeds].sort());

    const again = await remote.generate({ subject: "a fox", count: 4, seed: 7 });
    expect(again).toEqual(prompts);
    const neighbour = await remote.generate({ subject: "a fox", count: 4, seed: 8 });
    const neighbourSeeds = new Set(neighbour.map((prompt) => prompt.text));
    expect(prompts.filter((prompt) => neighbourSeeds.has(prompt.text))).toEqual([]);
  });

  it("forwards sampling settings, request overrides and the token cap", async () => {
    fake.script({ kind: "text", generatedText: " x" });
    await generator().generate({
      subject: "a fox",
      count: 1,
      seed: 3,
      maxNewTokens: 12,
      sampling: { temperature: 0.7 },
    });
    // The v4 client flattens parameters into an OpenAI-style body: max_new_tokens → max_tokens.
    expect(bodyOf(0)).toMatchObject({
      prompt: "<caption>a fox",
      max_tokens: 12,
      seed: promptSeed(3, 0),
      do_sample: true,
      temperature: 0.7,
      top_k: 50,
      top_p: 0.95,
      repetition_penalty: 1.2,
      return_full_text: false,
      details: true,
      stop: ["</caption>"],
    });
  });

  it("asks for greedy decoding at temperature 0 and leaves out disabled cuts", async () => {
    fake.script({ kind: "text", generatedText: " x" });
    await generator({
      sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
    }).generate({ subject: "a fox", count: 1, seed: 3 });
    const body = bodyOf(0);
    expect(body).toMatchObject({ do_sample: false, max_tokens: 20, repetition_penalty: 1 });
    expect(body).not.toHaveProperty("temperature");
    expect(body).not.toHaveProperty("top_k");
    expect(body).not.toHaveProperty("top_p");
  });

  it("posts to the endpoint's completions route with the token as a bearer credential", async () => {
    fake.script({ kind: "text", generatedText: " x" });
    await generator().generate({ subject: "a fox", count: 1, seed: 1 });
    const [request] = fake.completions;
    expect(request?.path).toBe("/endpoints/gpt2-laion/v1/completions");
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it("reaches a Hub model id through the provider router via the custom fetch", async () => {
    fake.script({ kind: "text", generatedText: " in the snow</caption>" });
    const remote = generator({
      endpointUrl: undefined,
      model: "imagine-bot/gpt2-laion-tags",
      provider: "hf-inference",
      fetch: fake.fetch,
    });
    const [prompt] = await remote.generate({ subject: "a fox", count: 1, seed: 1 });
    expect(prompt?.text).toBe("a fox in the snow");
    const [request] = fake.completions;
    expect(request?.path).toBe("/hf-inference/models/imagine-bot/gpt2-laion-tags/v1/completions");
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(bodyOf(0).model).toBe("imagine-bot/gpt2-laion-tags");
    expect(fake.requests.some((recorded) => recorded.path.startsWith("/api/models/"))).toBe(true);
    expect(remote.description).toContain("imagine-bot/gpt2-laion-tags");
  });
});

describe("remote prompt generator: retries and failures", () => {
  it("retries a model that is loading, waiting for its estimated time", async () => {
    fake.script(
      { kind: "loading", estimatedTime: 2 },
      { kind: "text", generatedText: " at night</caption>" },
    );
    const logged: { level: string; obj: object }[] = [];
    const logger: Logger = {
      debug: (obj) => void logged.push({ level: "debug", obj }),
      info: (obj) => void logged.push({ level: "info", obj }),
      warn: (obj) => void logged.push({ level: "warn", obj }),
      error: (obj) => void logged.push({ level: "error", obj }),
      child: () => logger,
    };
    const [prompt] = await generator({ retries: 2, logger }).generate({
      subject: "a fox",
      count: 1,
      seed: 1,
    });
    expect(prompt?.text).toBe("a fox at night");
    expect(fake.completions).toHaveLength(2);
    expect(sleeps).toEqual([2000]);
    const warnings = logged.filter((entry) => entry.level === "warn").map((entry) => entry.obj);
    expect(warnings).toEqual([
      expect.objectContaining({ index: 0, attempt: 1, delayMs: 2000, status: 503 }),
    ]);
    expect(reachableStrings(logged).filter((text) => text.includes(TOKEN))).toEqual([]);
  });

  it("honours Retry-After on 429", async () => {
    fake.script(
      { kind: "rateLimited", retryAfter: "3" },
      { kind: "text", generatedText: " at night</caption>" },
    );
    await generator({ retries: 1 }).generate({ subject: "a fox", count: 1, seed: 1 });
    expect(fake.completions).toHaveLength(2);
    expect(sleeps).toEqual([3000]);
  });

  it("gives up after the configured retries with REMOTE_FAILED naming target and status", async () => {
    fake.otherwise({ kind: "error", status: 500, body: { error: "CUDA out of memory" } });
    const error = await failureOf(
      generator({ retries: 2 }).generate({ subject: "a fox", count: 1, seed: 1 }),
    );
    expect(fake.completions).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
    expect(error.code).toBe("REMOTE_FAILED");
    expect(error.message).toContain(`${fake.url}/endpoints/gpt2-laion`);
    expect(error.message).toContain("HTTP 500");
    expect(error.message).toContain("CUDA out of memory");
  });

  it("never puts the token in the error, its cause or its serialisation", async () => {
    fake.otherwise({ kind: "error", status: 401, body: { error: "Invalid credentials" } });
    const error = await failureOf(generator().generate({ subject: "a fox", count: 1, seed: 1 }));
    expect(error.message).toContain("HTTP 401");
    // A logger may serialise any property, enumerable or not, however deep: walk them all.
    expect(reachableStrings(error).filter((text) => text.includes(TOKEN))).toEqual([]);
  });

  it("does not retry a client error", async () => {
    fake.otherwise({ kind: "error", status: 422, body: { error: "Input validation error" } });
    const error = await failureOf(
      generator({ retries: 3 }).generate({ subject: "a fox", count: 1, seed: 1 }),
    );
    expect(error.message).toContain("HTTP 422");
    expect(fake.completions).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it("retries an unreachable endpoint and reports the network error", async () => {
    const closed = createServer();
    closed.listen(0, "127.0.0.1");
    await new Promise((resolve) => closed.once("listening", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));

    const error = await failureOf(
      generator({ endpointUrl: `http://127.0.0.1:${port}/gpt2`, retries: 1 }).generate({
        subject: "a fox",
        count: 1,
        seed: 1,
      }),
    );
    expect(error.code).toBe("REMOTE_FAILED");
    expect(error.message).toContain(`127.0.0.1:${port}/gpt2`);
    expect(error.message).toContain("ECONNREFUSED");
    expect(sleeps).toHaveLength(1);
  });

  it("times out a request that hangs, retries it, then fails", async () => {
    fake.otherwise({ kind: "hang" });
    const error = await failureOf(
      generator({ timeoutMs: 50, retries: 1 }).generate({ subject: "a fox", count: 1, seed: 1 }),
    );
    expect(error.code).toBe("REMOTE_FAILED");
    expect(error.message).toMatch(/gpt2-laion timed out after 50 ms/);
    expect(fake.completions).toHaveLength(2);
    // Each timed-out request was actually cancelled, not left running.
    await Promise.all(fake.completions.map((request) => request.abandoned));
  });

  it("fails the whole batch on the first failure and cancels the other requests", async () => {
    let arrivals = 0;
    fake.otherwise(() =>
      arrivals++ === 0
        ? { kind: "hang" }
        : { kind: "error", status: 400, body: { error: "bad input" } },
    );
    const error = await failureOf(
      generator({ tags: null }).generate({ subject: "a fox", count: 2, seed: 1 }),
    );
    expect(error.message).toContain("HTTP 400");
    await fake.completions[0]?.abandoned;
  });
});

describe("remote prompt generator: cancellation and configuration", () => {
  it("aborts an in-flight request when the request signal aborts", async () => {
    fake.otherwise({ kind: "hang" });
    const controller = new AbortController();
    const running = generator({ retries: 3 }).generate({
      subject: "a fox",
      count: 1,
      seed: 1,
      signal: controller.signal,
    });
    await fake.waitForCompletions(1);
    controller.abort();
    const error = await failureOf(running);
    expect(error.code).toBe("ABORTED");
    await fake.completions[0]?.abandoned;
    expect(fake.completions).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it("sends nothing when the signal is already aborted", async () => {
    const error = await failureOf(
      generator().generate({ subject: "a fox", count: 2, seed: 1, signal: AbortSignal.abort() }),
    );
    expect(error.code).toBe("ABORTED");
    expect(fake.requests).toHaveLength(0);
  });

  it("refuses to generate after close", async () => {
    const remote = generator();
    await remote.close();
    await remote.close();
    const error = await failureOf(remote.generate({ subject: "a fox", count: 1, seed: 1 }));
    expect(error.code).toBe("GENERATION_FAILED");
    expect(fake.requests).toHaveLength(0);
  });

  const base = { maxNewTokens: 20, sampling: SAMPLING, timeoutMs: 1000, retries: 0 };

  it.each<[string, Partial<RemoteGeneratorOptions>, RegExp]>([
    ["neither model nor endpointUrl", {}, /exactly one of model .* or endpointUrl.*neither/],
    [
      "both model and endpointUrl",
      { model: "org/gpt2", endpointUrl: "https://example.test" },
      /exactly one of model .* or endpointUrl.*both/,
    ],
    [
      "a provider with an endpoint",
      { endpointUrl: "https://example.test", provider: "together" },
      /provider applies to model ids only/,
    ],
    [
      "an unknown provider",
      { model: "org/gpt2", provider: "nowhere" },
      /unknown provider "nowhere"/,
    ],
    ["a malformed endpoint", { endpointUrl: "not a url" }, /endpointUrl is not a valid URL/],
    ["a non-positive timeout", { model: "org/gpt2", timeoutMs: 0 }, /timeoutMs/],
    ["negative retries", { model: "org/gpt2", retries: -1 }, /retries/],
  ])("rejects %s with a ConfigError", (_name, options, message) => {
    expect(() => createRemoteGenerator({ ...base, ...options })).toThrow(ConfigError);
    expect(() => createRemoteGenerator({ ...base, ...options })).toThrow(message);
  });
});
