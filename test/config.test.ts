import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { armSampling, loadConfig } from "../src/core/config.js";
import { ConfigError } from "../src/core/errors.js";

let dir: string;
let modelDir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "imagine-config-"));
  modelDir = join(dir, "model");
  await mkdir(modelDir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An environment with only what the test sets: the machine's own variables must not leak in. */
const env = (vars: Record<string, string>) => ({ IMAGINE_MODEL_DIR: modelDir, ...vars });

describe("loadConfig", () => {
  it("loads the defaults, with the model directory from IMAGINE_MODEL_DIR", () => {
    const { config, secrets } = loadConfig(env({}));
    expect(config.defaultArm).toBe("ft-tags");
    expect(config.arms["ft-tags"]).toMatchObject({ kind: "onnx", modelDir });
    expect(config.prompt.count).toBe(5);
    expect(config.prompt.spinning).toBe(false); // idle-waiting decoder threads unless asked
    expect(secrets).toEqual({});
  });

  it("takes IMAGINE_DATA_DIR, resolved against the working directory", () => {
    const { config } = loadConfig(env({ IMAGINE_DATA_DIR: "some/where" }));
    expect(config.dataDir).toBe(join(process.cwd(), "some/where"));
  });

  it("reads secrets from the environment only", () => {
    expect(loadConfig(env({ HF_TOKEN: "hf_abc" })).secrets).toEqual({ hfToken: "hf_abc" });
  });

  it("merges a deployer file and resolves its paths against the file's folder", async () => {
    const file = join(dir, "deploy.json");
    await writeFile(
      file,
      JSON.stringify({
        defaultArm: "base",
        arms: {
          base: { kind: "onnx", modelDir: "./model", sampling: { temperature: 0.7 } },
          "ft-tags": { modelDir: "model" },
        },
        sampling: { topK: 40, temperature: 1, topP: 0.9, repetitionPenalty: 1 },
      }),
    );
    const { config } = loadConfig({ IMAGINE_CONFIG: file });
    expect(config.arms["ft-tags"]).toMatchObject({ modelDir });
    const base = config.arms.base;
    expect(base).toMatchObject({ kind: "onnx", modelDir });
    expect(Object.keys(config.arms).sort()).toEqual(["base", "ft-tags"]);
    if (!base) throw new Error("unreachable");
    expect(armSampling(config, base)).toEqual({
      temperature: 0.7,
      topK: 40,
      topP: 0.9,
      repetitionPenalty: 1,
    });
  });

  it("names the setting, its source and what is valid when a value is wrong", async () => {
    const file = join(dir, "bad.json");
    await writeFile(
      file,
      JSON.stringify({ sampling: { topP: 2 }, prompt: { count: 0, spinning: "yes" } }),
    );
    let error: unknown;
    try {
      loadConfig(env({ IMAGINE_CONFIG: file }));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(String(error)).toMatch(/sampling\.topP: .*1/);
    expect(String(error)).toMatch(/prompt\.count/);
    expect(String(error)).toMatch(/prompt\.spinning: .*boolean/);
  });

  it("names the environment variable that set a bad value", () => {
    expect(() => loadConfig(env({ IMAGINE_LOG_LEVEL: "loud" }))).toThrow(
      /log\.level.*IMAGINE_LOG_LEVEL/s,
    );
    expect(() => loadConfig({ IMAGINE_MODEL_DIR: join(dir, "nowhere") })).toThrow(
      /arms\.ft-tags\.modelDir \(set by IMAGINE_MODEL_DIR\).*not a directory/,
    );
  });

  it("rejects unknown keys, a missing deployer file and a default arm that does not exist", async () => {
    const file = join(dir, "typo.json");
    await writeFile(file, JSON.stringify({ prompts: { count: 3 } }));
    expect(() => loadConfig(env({ IMAGINE_CONFIG: file }))).toThrow(/prompts/);
    expect(() => loadConfig(env({ IMAGINE_CONFIG: join(dir, "missing.json") }))).toThrow(
      /does not exist/,
    );
    const arm = join(dir, "arm.json");
    await writeFile(arm, JSON.stringify({ defaultArm: "nope" }));
    expect(() => loadConfig({ IMAGINE_CONFIG: arm, IMAGINE_MODEL_DIR: modelDir })).toThrow(
      /defaultArm/,
    );
  });

  it("requires exactly one of model and endpointUrl for a remote arm", async () => {
    const file = join(dir, "remote.json");
    await writeFile(
      file,
      JSON.stringify({ arms: { hub: { kind: "remote", tags: null, maxNewTokens: 20 } } }),
    );
    expect(() => loadConfig(env({ IMAGINE_CONFIG: file }))).toThrow(
      /exactly one of model or endpointUrl/,
    );
  });

  it("rejects a file that is not JSON", async () => {
    const file = join(dir, "broken.json");
    await writeFile(file, "{ not json");
    expect(() => loadConfig(env({ IMAGINE_CONFIG: file }))).toThrow(/not valid JSON/);
  });

  it("checks the Discord channel allow-list", async () => {
    const file = join(dir, "discord.json");
    await writeFile(
      file,
      JSON.stringify({ discord: { channels: ["1234567890123456789", "general"] } }),
    );
    expect(() => loadConfig(env({ IMAGINE_CONFIG: file }))).toThrow(
      /discord\.channels\.1: .*Discord channel id/,
    );
    await writeFile(file, JSON.stringify({ discord: { channels: ["1234567890123456789"] } }));
    expect(loadConfig(env({ IMAGINE_CONFIG: file })).config.discord.channels).toEqual([
      "1234567890123456789",
    ]);
  });
});
