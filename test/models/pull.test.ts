/**
 * `models pull` against a fake Hugging Face Hub on 127.0.0.1 (test/fakes/hub.ts) that serves a
 * Xenova-style repository: config.json and onnx/decoder_model_merged.onnx (here the bytes of the
 * shipped tiny GPT-2, models/tiny-caption-gpt2/model.onnx), plus files a pull must not fetch.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { UserError } from "../../src/core/errors.js";
import { type FileEvent, type PullOptions, pullModel } from "../../src/core/models/pull.js";
import { readModelDirectory } from "../../src/core/prompt/modelDir.js";
import { Gpt2OnnxDecoder } from "../../src/core/prompt/onnxDecoder.js";
import { RemoteCallError } from "../../src/core/retry.js";
import { FakeHub, sha256 } from "../fakes/hub.js";
import { float32FromBase64, greedyThroughCache, maxAbsDiff } from "../helpers/golden.js";
import { FAST_RETRY, failure, useFakeHub } from "./pullHarness.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const TINY = join(ROOT, "models", "tiny-caption-gpt2");
const ONNX = readFileSync(join(TINY, "model.onnx"));
const ONNX_PATH = "onnx/decoder_model_merged.onnx";
const CONFIG = JSON.stringify({
  architectures: ["GPT2LMHeadModel"],
  model_type: "gpt2",
  n_ctx: 64,
  n_embd: 32,
  n_head: 2,
  n_layer: 2,
  n_positions: 64,
  vocab_size: 50257,
});
const XENOVA_STYLE = {
  "config.json": CONFIG,
  [ONNX_PATH]: ONNX,
  "onnx/decoder_model_merged_quantized.onnx": Buffer.alloc(4096, 7),
  "tokenizer.json": "{}",
  "README.md": "# gpt2\n",
};

const pulls = useFakeHub("imagine-pull-");

function pull(options: Partial<PullOptions> = {}) {
  return pullModel({
    source: "gpt2",
    modelsDir: pulls.modelsDir,
    endpoint: pulls.hub.url,
    retry: FAST_RETRY,
    ...options,
  });
}

describe("pulling the gpt2 alias from a Xenova-style repository", () => {
  it("writes a model directory the engine loads and runs like the original", async () => {
    const commit = pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    const result = await pull({ now: () => new Date("2026-01-02T03:04:05Z") });

    const dir = join(pulls.modelsDir, "gpt2");
    expect(result).toMatchObject({ name: "gpt2", repo: "Xenova/gpt2", revision: commit, dir });
    expect(result.files.map((f) => [f.path, f.skipped])).toEqual([
      ["config.json", false],
      [ONNX_PATH, false],
      ["imagine-model.json", false],
    ]);
    const onnx = result.files.find((f) => f.path === ONNX_PATH);
    expect(onnx).toMatchObject({ bytes: ONNX.length, sha256: sha256(ONNX) });
    expect(sha256(readFileSync(join(dir, ONNX_PATH)))).toBe(sha256(ONNX));

    const metadata = JSON.parse(await readFile(join(dir, "imagine-model.json"), "utf8"));
    expect(metadata).toMatchObject({
      format: "imagine-bot/model",
      version: 1,
      onnx: ONNX_PATH,
      architecture: {
        type: "gpt2",
        vocabSize: 50257,
        nPositions: 64,
        nEmbd: 32,
        nLayer: 2,
        nHead: 2,
      },
      tags: null,
      meanCaptionTokens: 20,
      provenance: {
        baseModel: "Xenova/gpt2",
        revision: commit,
        requestedRevision: "main",
        pulledAt: "2026-01-02T03:04:05.000Z",
      },
    });

    // Only what the engine needs was fetched; the LFS decoder came through the CDN redirect.
    const fetched = pulls.hub.served.map((s) => s.path).sort();
    expect(fetched).toEqual(["config.json", ONNX_PATH]);
    expect(pulls.hub.resolves("tokenizer.json")).toHaveLength(0);
    // Nothing but the model folder is left behind.
    expect(await readdir(pulls.modelsDir)).toEqual(["gpt2"]);

    expect(readModelDirectory(dir).onnxPath).toBe(join(dir, ONNX_PATH));
    const golden = JSON.parse(await readFile(join(TINY, "golden.json"), "utf8")) as {
      inputIds: number[];
      lastLogitsBase64: string;
    };
    const decoder = await Gpt2OnnxDecoder.load(dir);
    try {
      const step = await decoder.step([golden.inputIds], decoder.emptyCache(1));
      const bytes = Buffer.from(golden.lastLogitsBase64, "base64");
      const reference = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      expect(step.lastLogits.length).toBe(reference.length);
      let maxDiff = 0;
      for (let i = 0; i < reference.length; i++) {
        maxDiff = Math.max(
          maxDiff,
          Math.abs((step.lastLogits[i] as number) - (reference[i] as number)),
        );
      }
      expect(maxDiff).toBeLessThan(1e-4);
    } finally {
      await decoder.close();
    }
  });

  it("resolves --revision to a commit and follows the tree listing's pages", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    const dev = pulls.hub.addRepo(
      "Xenova/gpt2",
      { ...XENOVA_STYLE, "README.md": "# dev\n" },
      { ref: "dev" },
    );
    pulls.hub.pageSize = 2;
    const result = await pull({ revision: "dev" });
    expect(result.revision).toBe(dev);
    const trees = pulls.hub.apiCalls().filter((r) => r.path.includes("/tree/"));
    expect(trees.length).toBeGreaterThan(2);
    // Every file was fetched at the commit, not at the moving branch.
    for (const request of pulls.hub.requests.filter((r) => r.path.includes("/resolve/"))) {
      expect(request.path).toContain(`/resolve/${dev}/`);
    }
  });

  it("pulls any owner/repo into a folder named after the repository", async () => {
    pulls.hub.addRepo("someone/gpt2-laion", XENOVA_STYLE);
    const result = await pull({ source: "someone/gpt2-laion" });
    expect(result.dir).toBe(join(pulls.modelsDir, "gpt2-laion"));
    expect(readModelDirectory(result.dir).metadata.provenance.baseModel).toBe("someone/gpt2-laion");
  });

  it("fetches a repository's own imagine-model.json and the decoder it names, nothing else", async () => {
    const own = await readFile(join(TINY, "imagine-model.json"));
    pulls.hub.addRepo("lab/gpt2-laion-tags", {
      "imagine-model.json": own,
      "model.onnx": ONNX,
      "config.json": CONFIG,
      "golden.json": "{}",
    });
    const result = await pull({ source: "lab/gpt2-laion-tags" });
    expect(result.files.map((f) => f.path)).toEqual(["imagine-model.json", "model.onnx"]);
    expect(readFileSync(join(result.dir, "imagine-model.json"))).toEqual(own);
    expect(readModelDirectory(result.dir).metadata.tags).not.toBeNull();
  });

  it("writes the given mean caption length", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    const result = await pull({ meanCaptionTokens: 15.2 });
    expect(readModelDirectory(result.dir).metadata.meanCaptionTokens).toBe(15.2);
  });
});

describe("resuming", () => {
  const CUT = 1_000_000;

  it("a pull cut half-way resumes with a Range request on the next run", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    pulls.hub.fault(ONNX_PATH, { kind: "cut", afterBytes: CUT });
    const error = await failure(pull({ retry: { ...FAST_RETRY, retries: 0 } }));
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(existsSync(join(pulls.modelsDir, "gpt2"))).toBe(false);
    const part = join(pulls.modelsDir, ".gpt2.pull", `${ONNX_PATH}.part`);
    expect(statSync(part).size).toBe(CUT);

    const events: FileEvent[] = [];
    const result = await pull({ onFile: (event) => events.push(event) });
    const served = pulls.hub.served.filter((s) => s.path === ONNX_PATH);
    expect(served).toEqual([
      { path: ONNX_PATH, range: undefined, status: 200 },
      { path: ONNX_PATH, range: `bytes=${CUT}-`, status: 206 },
    ]);
    expect(events).toContainEqual({
      kind: "start",
      path: ONNX_PATH,
      total: ONNX.length,
      resumedFrom: CUT,
    });
    expect(result.files.find((f) => f.path === ONNX_PATH)?.sha256).toBe(sha256(ONNX));
    expect(sha256(readFileSync(join(result.dir, ONNX_PATH)))).toBe(sha256(ONNX));
    // config.json was verified in the first run and not fetched again.
    expect(pulls.hub.served.filter((s) => s.path === "config.json")).toHaveLength(1);
  });

  it("a connection cut within one pull is retried from where it stopped", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    pulls.hub.fault(
      ONNX_PATH,
      { kind: "cut", afterBytes: CUT },
      { kind: "cut", afterBytes: 500_000 },
    );
    const result = await pull();
    expect(pulls.hub.served.filter((s) => s.path === ONNX_PATH).map((s) => s.range)).toEqual([
      undefined,
      `bytes=${CUT}-`,
      `bytes=${CUT + 500_000}-`,
    ]);
    expect(result.files.find((f) => f.path === ONNX_PATH)?.sha256).toBe(sha256(ONNX));
  });

  it("starts the file over when the server ignores the Range header", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    pulls.hub.fault(ONNX_PATH, { kind: "cut", afterBytes: CUT }, { kind: "ignoreRange" });
    const result = await pull();
    expect(pulls.hub.served.filter((s) => s.path === ONNX_PATH).at(-1)).toEqual({
      path: ONNX_PATH,
      range: `bytes=${CUT}-`,
      status: 200,
    });
    expect(sha256(readFileSync(join(result.dir, ONNX_PATH)))).toBe(sha256(ONNX));
  });
});

describe("integrity and the previous directory", () => {
  it("detects a corrupted download, deletes it and keeps the previous directory", async () => {
    const first = pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    await pull();
    const dir = join(pulls.modelsDir, "gpt2");
    const before = await readFile(join(dir, "imagine-model.json"), "utf8");

    const changed = Buffer.concat([ONNX, Buffer.from("new revision")]);
    pulls.hub.addRepo("Xenova/gpt2", { ...XENOVA_STYLE, [ONNX_PATH]: changed });
    pulls.hub.fault(ONNX_PATH, { kind: "corrupt" });
    const error = await failure(pull());
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(error.message).toMatch(/corrupt \(SHA-256 [0-9a-f]{64}, expected [0-9a-f]{64}\)/);
    expect(error.message).toMatch(/partial file was deleted/);
    expect(existsSync(join(pulls.modelsDir, ".gpt2.pull", `${ONNX_PATH}.part`))).toBe(false);
    expect(existsSync(join(pulls.modelsDir, ".gpt2.pull", ONNX_PATH))).toBe(false);

    // The previous pull is untouched and still loads.
    expect(await readFile(join(dir, "imagine-model.json"), "utf8")).toBe(before);
    expect(sha256(readFileSync(join(dir, ONNX_PATH)))).toBe(sha256(ONNX));
    expect(readModelDirectory(dir).metadata.provenance.revision).toBe(first);
  });

  it("leaves the previous directory usable when a pull is interrupted", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    await pull();
    // Still a valid ONNX model (a pull reads the graph to unmerge it): a doc_string field appended.
    const changed = Buffer.concat([ONNX, Buffer.from([0x32, 2]), Buffer.from("v2")]);
    const second = pulls.hub.addRepo("Xenova/gpt2", { ...XENOVA_STYLE, [ONNX_PATH]: changed });
    pulls.hub.fault(ONNX_PATH, { kind: "cut", afterBytes: 1000 });
    await failure(pull({ retry: { ...FAST_RETRY, retries: 0 } }));
    const decoder = await Gpt2OnnxDecoder.load(join(pulls.modelsDir, "gpt2"));
    await decoder.close();

    // The next run finishes it: new decoder, config.json reused, metadata for the new commit.
    const result = await pull();
    expect(result.revision).toBe(second);
    expect(result.files.map((f) => [f.path, f.skipped])).toEqual([
      ["config.json", true],
      [ONNX_PATH, false],
      ["imagine-model.json", false],
    ]);
    expect(sha256(readFileSync(join(result.dir, ONNX_PATH)))).toBe(sha256(changed));
    expect(readModelDirectory(result.dir).metadata.provenance.revision).toBe(second);
  });

  it("puts back a directory left aside by a pull that died between its renames", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    const { dir } = await pull();
    const { rename } = await import("node:fs/promises");
    await rename(dir, join(pulls.modelsDir, ".gpt2.old"));
    const result = await pull();
    expect(result.files.every((f) => f.skipped)).toBe(true);
    expect(await readdir(pulls.modelsDir)).toEqual(["gpt2"]);
  });

  it("skips files already present and verified", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    const first = await pull();
    const metadataBefore = await readFile(join(first.dir, "imagine-model.json"), "utf8");
    const requestsBefore = pulls.hub.served.length;

    const second = await pull();
    expect(second.files.map((f) => [f.path, f.skipped])).toEqual([
      ["config.json", true],
      [ONNX_PATH, true],
      ["imagine-model.json", true],
    ]);
    expect(second.files.map((f) => f.sha256)).toEqual(first.files.map((f) => f.sha256));
    expect(pulls.hub.served.length).toBe(requestsBefore);
    expect(await readFile(join(first.dir, "imagine-model.json"), "utf8")).toBe(metadataBefore);
  });

  it("downloads again a file that was changed on disk", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    const { dir } = await pull();
    const damaged = Buffer.from(ONNX);
    damaged[100] = (damaged[100] as number) ^ 1;
    await writeFile(join(dir, ONNX_PATH), damaged);
    const result = await pull();
    expect(result.files.find((f) => f.path === ONNX_PATH)?.skipped).toBe(false);
    expect(sha256(readFileSync(join(dir, ONNX_PATH)))).toBe(sha256(ONNX));
  });

  it("will not replace a folder that models pull did not write, unless forced", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    await mkdir(join(pulls.modelsDir, "gpt2"));
    await writeFile(join(pulls.modelsDir, "gpt2", "notes.txt"), "mine");
    const error = await failure(pull());
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(/was not written by models pull.*--force/);
    const result = await pull({ force: true });
    expect(existsSync(join(result.dir, "notes.txt"))).toBe(false);
  });
});

describe("errors", () => {
  it("401 on a private repository says to set HF_TOKEN, and the token is sent", async () => {
    pulls.hub.addRepo("lab/private-gpt2", XENOVA_STYLE, { token: "hf_secret" });
    const anonymous = await failure(pull({ source: "lab/private-gpt2" }));
    expect(anonymous).toBeInstanceOf(UserError);
    expect(anonymous.message).toMatch(/401.*set HF_TOKEN/);

    const wrong = await failure(pull({ source: "lab/private-gpt2", token: "hf_wrong" }));
    expect(wrong.message).toMatch(/HF_TOKEN was refused/);

    const result = await pull({ source: "lab/private-gpt2", token: "hf_secret" });
    expect(result.files).toHaveLength(3);
    expect(pulls.hub.requests.at(-1)?.headers.authorization).toBe("Bearer hf_secret");
    // No retries for an answer that will not change.
    expect(pulls.hub.apiCalls().filter((r) => r.headers.authorization === undefined)).toHaveLength(
      1,
    );
  });

  it("403 on a gated repository says to accept the licence", async () => {
    pulls.hub.addRepo("lab/gated-gpt2", XENOVA_STYLE, { token: "hf_ok", gated: true });
    const error = await failure(pull({ source: "lab/gated-gpt2", token: "hf_not_accepted" }));
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(
      /gated.*accept the model's licence at http:\/\/127\.0\.0\.1:\d+\/lab\/gated-gpt2/,
    );
  });

  it("404 names the missing repository or revision", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    const repo = await failure(pull({ source: "nobody/nothing", token: "hf_any" }));
    expect(repo).toBeInstanceOf(UserError);
    expect(repo.message).toMatch(/Repository nobody\/nothing not found .*HTTP 404/);
    const revision = await failure(pull({ revision: "no-such-branch" }));
    expect(revision.message).toMatch(/Revision "no-such-branch" not found in Xenova\/gpt2/);
    expect(existsSync(join(pulls.modelsDir, "gpt2"))).toBe(false);
  });

  it("retries 429 and 5xx answers, then fails with the status", async () => {
    pulls.hub.addRepo("Xenova/gpt2", XENOVA_STYLE);
    pulls.hub.apiFailures.push(500, 429);
    pulls.hub.fault(ONNX_PATH, { kind: "status", status: 503 });
    const result = await pull();
    expect(result.files).toHaveLength(3);
    expect(pulls.hub.resolves(ONNX_PATH)).toHaveLength(2);

    pulls.hub.apiFailures.push(500, 500, 500, 500);
    const error = await failure(pull({ name: "again" }));
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(error.message).toMatch(/HTTP 500/);
  });

  it("names the endpoint when the Hub cannot be reached", async () => {
    const closed = await new FakeHub().start();
    await closed.stop();
    const error = await failure(
      pull({ endpoint: closed.url, retry: { ...FAST_RETRY, retries: 1 } }),
    );
    expect(error).toBeInstanceOf(RemoteCallError);
    expect(error.message).toMatch(
      /Cannot reach the Hugging Face Hub at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
    );
  });

  it("rejects what is neither an alias nor a repository id", async () => {
    const error = await failure(pull({ source: "not a model" }));
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(
      /neither a built-in model \(gpt2, gpt2-medium, gpt2-large, gpt2-xl, magicprompt, sd-turbo, sd21\) nor a Hugging Face repository id/,
    );
  });

  it("rejects a repository that is not GPT-2 before downloading the decoder", async () => {
    pulls.hub.addRepo("lab/llama", {
      ...XENOVA_STYLE,
      "config.json": JSON.stringify({ model_type: "llama" }),
    });
    const error = await failure(pull({ source: "lab/llama" }));
    expect(error.message).toMatch(/model_type is "llama"/);
    expect(pulls.hub.served.filter((s) => s.path === ONNX_PATH)).toHaveLength(0);
  });

  it("says which ONNX files a repository has when none is in a known layout", async () => {
    pulls.hub.addRepo("lab/odd", { "config.json": CONFIG, "onnx/model_q4.onnx": ONNX });
    const error = await failure(pull({ source: "lab/odd" }));
    expect(error.message).toMatch(/no ONNX GPT-2 decoder in a known layout.*onnx\/model_q4\.onnx/);
  });
});

describe("a Hugging Face merged decoder", () => {
  // optimum's layout (an If on use_cache_branch over two copies of the decoder), tiny random
  // weights, with PyTorch's golden logits (test/fixtures/hf-merged-gpt2).
  const FIXTURE = join(ROOT, "test", "fixtures", "hf-merged-gpt2");
  const MERGED = readFileSync(join(FIXTURE, "decoder_model_merged.onnx"));
  const MERGED_CONFIG = JSON.stringify({
    model_type: "gpt2",
    n_embd: 8,
    n_head: 2,
    n_layer: 2,
    n_positions: 64,
    vocab_size: 50257,
  });
  const MERGED_REPO = { "config.json": MERGED_CONFIG, [ONNX_PATH]: MERGED, "README.md": "# m\n" };
  const DATA_PATH = `${ONNX_PATH}.unmerged.data`;
  const golden = JSON.parse(readFileSync(join(FIXTURE, "golden.json"), "utf8")) as {
    inputIds: number[];
    lastLogitsBase64: string;
    greedy: { steps: number; tokens: number[]; logits: number[] };
  };

  async function expectGolden(dir: string): Promise<void> {
    const decoder = await Gpt2OnnxDecoder.load(dir, { threads: 1 });
    try {
      const step = await decoder.step([golden.inputIds], decoder.emptyCache(1));
      expect(maxAbsDiff(step.lastLogits, float32FromBase64(golden.lastLogitsBase64))).toBeLessThan(
        1e-4,
      );
      const { tokens, chosen } = await greedyThroughCache(
        decoder,
        golden.inputIds,
        golden.greedy.steps,
      );
      expect(tokens).toEqual(golden.greedy.tokens);
      expect(maxAbsDiff(chosen, golden.greedy.logits)).toBeLessThan(1e-4);
    } finally {
      await decoder.close();
    }
  }

  async function manifestOf(dir: string) {
    return JSON.parse(await readFile(join(dir, ".pull.json"), "utf8")) as {
      complete: boolean;
      files: { path: string; sha256: string; unmergedFrom?: { bytes: number; sha256: string } }[];
      unmerged?: unknown[];
    };
  }

  it("is unmerged on pull: one graph, no If, weights mapped, the same logits, its source recorded", async () => {
    pulls.hub.addRepo("Xenova/gpt2", MERGED_REPO);
    const events: FileEvent[] = [];
    const result = await pull({ onFile: (event) => events.push(event) });

    const onDisk = readFileSync(join(result.dir, ONNX_PATH));
    const weights = readFileSync(join(result.dir, DATA_PATH));
    const from = { bytes: MERGED.length, sha256: sha256(MERGED) };
    expect(result.files.filter((f) => f.path.startsWith("onnx/"))).toEqual([
      {
        path: ONNX_PATH,
        bytes: onDisk.length,
        sha256: sha256(onDisk),
        skipped: false,
        unmergedFrom: from,
      },
      {
        path: DATA_PATH,
        bytes: weights.length,
        sha256: sha256(weights),
        skipped: false,
        unmergedFrom: from,
      },
    ]);
    expect(events.map((e) => e.kind)).toContain("unmerge");
    // The weights left the graph for the external-data file.
    expect(onDisk.length).toBeLessThan(100_000);
    expect(weights.length).toBeGreaterThan(MERGED.length - 2 * onDisk.length);

    const session = await ort.InferenceSession.create(join(result.dir, ONNX_PATH));
    expect(session.inputNames).not.toContain("use_cache_branch");
    await session.release();
    expect(onDisk.includes(Buffer.from("use_cache_branch"))).toBe(false);
    await expectGolden(result.dir);

    const manifest = await manifestOf(result.dir);
    expect(manifest.complete).toBe(true);
    expect(manifest.files.filter((f) => f.unmergedFrom?.sha256 === sha256(MERGED))).toHaveLength(2);
    expect((await readdir(join(result.dir, "onnx"))).sort()).toEqual([
      "decoder_model_merged.onnx",
      "decoder_model_merged.onnx.unmerged.data",
    ]);
  });

  it("a second pull reuses the unmerged file without downloading or converting", async () => {
    pulls.hub.addRepo("Xenova/gpt2", MERGED_REPO);
    const first = await pull();
    const served = pulls.hub.served.length;
    const events: FileEvent[] = [];
    const second = await pull({ onFile: (event) => events.push(event) });
    expect(second.files.map((f) => [f.path, f.skipped])).toEqual([
      ["config.json", true],
      [ONNX_PATH, true],
      [DATA_PATH, true],
      ["imagine-model.json", true],
    ]);
    expect(second.files).toEqual(first.files.map((f) => ({ ...f, skipped: true })));
    expect(pulls.hub.served.length).toBe(served);
    expect(events.map((e) => e.kind)).not.toContain("unmerge");

    // A new commit with the same decoder (only the README changed) reuses it too.
    pulls.hub.addRepo("Xenova/gpt2", { ...MERGED_REPO, "README.md": "# changed\n" });
    const third = await pull();
    expect(third.files.find((f) => f.path === ONNX_PATH)?.skipped).toBe(true);
    expect(pulls.hub.served.filter((s) => s.path === ONNX_PATH)).toHaveLength(1);
    await expectGolden(third.dir);
  });

  it("a damaged unmerged file (graph or weights) is fetched and unmerged again", async () => {
    pulls.hub.addRepo("Xenova/gpt2", MERGED_REPO);
    const { dir, files } = await pull();
    for (const [round, path] of [ONNX_PATH, DATA_PATH].entries()) {
      const damaged = readFileSync(join(dir, path));
      damaged[200] = (damaged[200] as number) ^ 1;
      await writeFile(join(dir, path), damaged);
      const result = await pull();
      expect(pulls.hub.served.filter((s) => s.path === ONNX_PATH)).toHaveLength(round + 2);
      expect(result.files.filter((f) => f.path.startsWith("onnx/"))).toEqual(
        files.filter((f) => f.path.startsWith("onnx/")).map((f) => ({ ...f, skipped: false })),
      );
      await expectGolden(dir);
    }
  });

  it("a pull cut after the conversion resumes from the unmerged file", async () => {
    pulls.hub.addRepo("Xenova/gpt2", MERGED_REPO);
    const cut = new Error("cut after the conversion");
    const error = await failure(
      pull({
        onFile: (event) => {
          if (event.kind === "done" && event.file.path === "imagine-model.json") throw cut;
        },
      }),
    );
    expect(error).toBe(cut);
    const staging = join(pulls.modelsDir, ".gpt2.pull");
    const state = await manifestOf(staging);
    expect(state.complete).toBe(false);
    expect(state.unmerged).toHaveLength(2);

    const events: FileEvent[] = [];
    const result = await pull({ onFile: (event) => events.push(event) });
    expect(pulls.hub.served.filter((s) => s.path === ONNX_PATH)).toHaveLength(1);
    expect(events.map((e) => e.kind)).not.toContain("unmerge");
    expect(result.files.find((f) => f.path === ONNX_PATH)?.unmergedFrom?.sha256).toBe(
      sha256(MERGED),
    );
    expect(existsSync(staging)).toBe(false);
    await expectGolden(result.dir);
  });

  it("a decoder that is not ONNX fails the pull with its name, and the old directory stays", async () => {
    pulls.hub.addRepo("Xenova/gpt2", MERGED_REPO);
    const { dir } = await pull();
    pulls.hub.addRepo("Xenova/gpt2", { ...MERGED_REPO, [ONNX_PATH]: Buffer.from("not a graph") });
    const error = await failure(pull());
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toMatch(
      /Xenova\/gpt2\/onnx\/decoder_model_merged\.onnx could not be read as an ONNX decoder/,
    );
    await expectGolden(dir);
  });
});
