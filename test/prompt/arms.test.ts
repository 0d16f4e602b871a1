import { resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Config } from "../../src/core/config.js";
import { createLogger } from "../../src/core/logger.js";
import { PromptArms } from "../../src/core/prompt/arms.js";
import { FakeHuggingFace } from "../fakes/huggingface.js";
import { testConfig } from "../helpers/config.js";

const MODEL_DIR = resolve(import.meta.dirname, "..", "..", "models", "tiny-caption-gpt2");
const logger = createLogger({ level: "silent" });

function config(arms: Config["arms"]): Config {
  return testConfig({
    arms,
    defaultArm: Object.keys(arms)[0],
    remote: { timeoutMs: 1000, retries: 0 },
  });
}

let arms: PromptArms | undefined;
afterEach(async () => {
  await arms?.close();
});

describe("PromptArms", () => {
  it("loads a model once for concurrent first requests and reuses it", async () => {
    arms = new PromptArms(config({ "ft-tags": { kind: "onnx", modelDir: MODEL_DIR } }), {}, logger);
    const [a, b] = await Promise.all([arms.get(), arms.get("ft-tags")]);
    expect(a).toBe(b);
    expect(await arms.get()).toBe(a);
  });

  it("applies each arm's own sampling over the defaults", async () => {
    arms = new PromptArms(
      config({
        greedy: { kind: "onnx", modelDir: MODEL_DIR, sampling: { temperature: 0 } },
        sampled: { kind: "onnx", modelDir: MODEL_DIR },
      }),
      {},
      logger,
    );
    const greedy = await arms.get("greedy");
    const request = { subject: "a red fox", count: 3, seed: 1 };
    const [one, two] = await Promise.all([
      greedy.generate(request),
      greedy.generate({ ...request, seed: 2 }),
    ]);
    // Greedy decoding ignores the seed: every prompt is the same.
    expect(new Set([...one, ...two].map((p) => p.text)).size).toBe(1);
    const sampled = await (await arms.get("sampled")).generate({ ...request, count: 5 });
    expect(new Set(sampled.map((p) => p.text)).size).toBeGreaterThan(1);
  });

  it("names the configured arms when asked for an unknown one", () => {
    arms = new PromptArms(config({ "ft-tags": { kind: "onnx", modelDir: MODEL_DIR } }), {}, logger);
    expect(() => arms?.get("nope")).toThrow(/no arm called "nope".*ft-tags/);
  });

  it("does not cache a failed load", async () => {
    arms = new PromptArms(
      config({ broken: { kind: "onnx", modelDir: "/nonexistent/model" } }),
      {},
      logger,
    );
    await expect(arms.get()).rejects.toThrow(/does not exist/);
    await expect(arms.get()).rejects.toThrow(/does not exist/);
  });

  it("serves a remote arm from configuration, with the token from the secrets", async () => {
    const fake = await new FakeHuggingFace().start();
    try {
      fake.script({ kind: "text", generatedText: " on a cliff, oil painting<|endoftext|>" });
      arms = new PromptArms(
        config({
          hub: {
            kind: "remote",
            endpointUrl: `${fake.url}/endpoints/laion`,
            tags: { start: "<|startoftext|>", end: "<|endoftext|>" },
            maxNewTokens: 12,
            sampling: { temperature: 0.7 },
          },
        }),
        { hfToken: "hf_test_token" },
        logger,
      );
      const [prompt] = await (await arms.get("hub")).generate({
        subject: "a lighthouse",
        count: 1,
        seed: 5,
      });
      expect(prompt).toMatchObject({
        text: "a lighthouse on a cliff, oil painting",
        complete: true,
      });
      const request = fake.completions[0];
      expect(request?.headers.authorization).toBe("Bearer hf_test_token");
      expect(request?.body).toMatchObject({ temperature: 0.7, max_tokens: 12 });
    } finally {
      await fake.stop();
    }
  });
});
