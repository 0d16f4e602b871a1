/**
 * Our prompt engine against transformers.js (@huggingface/transformers, a devDependency only), the
 * usual way to run an ONNX GPT-2 in Node, on the same weights, interleaved in one process.
 *
 * Both sides use the same onnxruntime-node (transformers.js pins 1.30.0, which npm dedupes to
 * ours), the same intra-op thread count and the same thread waiting (spinning off, as the engine
 * runs), so the ratio measures the engines and their graphs, not a setting either could change.
 * Ours: our own export (training/export_onnx.py, random weights, seed 0, cached in .cache/bench;
 * its default --kv-cache buffer graph), decoded as the engine does: the 4-token prefix once at
 * batch 1, its cache repeated per row, then one token per row and step. Theirs: the same weights
 * exported with --kv-cache concat (present = past + this step, the graph transformers.js expects)
 * in the Hugging Face layout that transformers.js loads offline (config.json,
 * generation_config.json, onnx/model.onnx and its model.onnx.data; a plain decoder with past, the
 * form optimum now exports and `models pull` leaves a merged one in),
 * `model.generate` on the prefix repeated per row. Both decode greedily for NEW_TOKENS tokens
 * (the prefix's step included) and must choose the same tokens.
 *
 *   npm run bench:peer                      # GPT-2 small, batches 1 and 5
 *   npm run -s bench:peer -- --json         # last line: {"ratio": {"1": …, "5": …}, "ours": …, "peer": …}
 *   npm run bench:peer -- --model DIR       # any model directory of ours (GPT-2 architecture);
 *                                           # a buffer-cache one needs --peer-model DIR: the same
 *                                           # weights with present.N.* outputs
 */
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as transformers from "@huggingface/transformers";
import * as ort from "onnxruntime-node";
import { externalDataLocations } from "../src/core/models/pull.js";
import { readModelDirectory } from "../src/core/prompt/modelDir.js";
import { Gpt2OnnxDecoder, type KvCache } from "../src/core/prompt/onnxDecoder.js";
import { encodeText } from "../src/core/prompt/tokenizer.js";
import {
  BATCHES,
  measureReadBandwidth,
  median,
  NEW_TOKENS,
  ROOT,
  randomPreset,
  SUBJECT,
} from "./lib/decodeBench.js";
import { summarizeOnnxGraph } from "./lib/onnxGraph.js";

const { values: flags } = parseArgs({
  options: {
    model: { type: "string" },
    "peer-model": { type: "string" },
    threads: { type: "string", default: "2" },
    repeats: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
  },
});

const EOS = 50256;

const quiet = flags.json === true;
const log = quiet ? () => {} : (line: string) => console.log(line);

function fail(message: string): never {
  console.error(`bench:peer: ${message}`);
  process.exit(2);
}

const threads = Number(flags.threads);
const repeats = Number(flags.repeats);
if (!Number.isInteger(threads) || threads < 1) fail("--threads must be a positive whole number");
if (!Number.isInteger(repeats) || repeats < 1) fail("--repeats must be a positive whole number");

const ourDir = flags.model ? resolve(flags.model) : randomPreset("gpt2", [], "", quiet);
const ours = await Gpt2OnnxDecoder.load(ourDir, { threads });
const { architecture } = ours.model.metadata;

/**
 * The graph transformers.js runs: --peer-model, or ours when it returns the whole cache (present.N.*),
 * or, for the default model, the same random weights exported with --kv-cache concat.
 */
function peerModelDir(): string {
  if (flags["peer-model"]) return resolve(flags["peer-model"]);
  if (!ours.buffersCache) return ourDir;
  if (flags.model) {
    fail(
      `${ourDir} returns only each step's keys and values (--kv-cache buffer), which transformers.js cannot run: pass --peer-model DIR, the same weights exported with --kv-cache concat`,
    );
  }
  return randomPreset("gpt2", ["--kv-cache", "concat"], "-concat", quiet);
}
const peerDir = peerModelDir();
const peerOnnx = readModelDirectory(peerDir).onnxPath;

/**
 * The Hugging Face layout of the same weights, under .cache/bench/peer: config.json from
 * imagine-model.json, and the graph hard-linked (copied where links fail) as onnx/model.onnx.
 */
async function hfLayout(): Promise<{ root: string; id: string }> {
  const root = join(ROOT, ".cache", "bench", "peer");
  const id = `${basename(peerDir)}-hf`;
  const dir = join(root, id);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "onnx"), { recursive: true });
  const config = {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: architecture.vocabSize,
    n_positions: architecture.nPositions,
    n_ctx: architecture.nPositions,
    n_embd: architecture.nEmbd,
    n_layer: architecture.nLayer,
    n_head: architecture.nHead,
    bos_token_id: EOS,
    eos_token_id: EOS,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
  };
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(
    join(dir, "generation_config.json"),
    `${JSON.stringify({ bos_token_id: EOS, eos_token_id: EOS })}\n`,
  );
  // The graph and the external-data files it names (model.onnx.data), under the same names.
  const files = [
    [peerOnnx, join(dir, "onnx", "model.onnx")],
    ...(await externalDataLocations(peerOnnx)).map((location) => [
      join(dirname(peerOnnx), location),
      join(dir, "onnx", location),
    ]),
  ] as [string, string][];
  for (const [from, to] of files) {
    try {
      linkSync(from, to);
    } catch {
      writeFileSync(to, readFileSync(from));
    }
  }
  return { root, id };
}

const hf = await hfLayout();
transformers.env.allowRemoteModels = false;
transformers.env.localModelPath = hf.root;
const peer = await transformers.AutoModelForCausalLM.from_pretrained(hf.id, {
  dtype: "fp32",
  device: "cpu",
  session_options: {
    intraOpNumThreads: threads,
    graphOptimizationLevel: "all",
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  },
});
const peerVersion = (
  JSON.parse(
    readFileSync(
      join(ROOT, "node_modules", "@huggingface", "transformers", "package.json"),
      "utf8",
    ),
  ) as { version: string }
).version;

const prefix = encodeText(SUBJECT);

function argmaxRows(logits: Float32Array, rows: number, vocab: number): number[] {
  const out: number[] = [];
  for (let row = 0; row < rows; row++) {
    let best = 0;
    let bestValue = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < vocab; v++) {
      const value = logits[row * vocab + v] as number;
      if (value > bestValue) {
        bestValue = value;
        best = v;
      }
    }
    out.push(best);
  }
  return out;
}

/** Our engine, greedy: NEW_TOKENS tokens per row; returns row 0's tokens and the seconds. */
async function runOurs(batch: number): Promise<{ tokens: number[]; seconds: number }> {
  const start = performance.now();
  const first = await ours.step([prefix], ours.emptyCache(1));
  let next = argmaxRows(first.lastLogits, 1, first.vocab);
  const tokens = [next[0] as number];
  let cache: KvCache = ours.selectRows(
    first.cache,
    Array.from({ length: batch }, () => 0),
  );
  next = Array.from({ length: batch }, () => next[0] as number);
  for (let i = 1; i < NEW_TOKENS; i++) {
    const step = await ours.step(
      next.map((token) => [token]),
      cache,
    );
    next = argmaxRows(step.lastLogits, batch, step.vocab);
    tokens.push(next[0] as number);
    cache = step.cache;
  }
  return { tokens, seconds: (performance.now() - start) / 1000 };
}

/** transformers.js, greedy: the same tokens, from model.generate. */
async function runPeer(batch: number): Promise<{ tokens: number[]; seconds: number }> {
  const ids = new BigInt64Array(batch * prefix.length);
  for (let row = 0; row < batch; row++) {
    prefix.forEach((token, i) => {
      ids[row * prefix.length + i] = BigInt(token);
    });
  }
  const start = performance.now();
  const output = (await peer.generate({
    input_ids: new transformers.Tensor("int64", ids, [batch, prefix.length]),
    attention_mask: new transformers.Tensor(
      "int64",
      new BigInt64Array(batch * prefix.length).fill(1n),
      [batch, prefix.length],
    ),
    max_new_tokens: NEW_TOKENS,
    min_new_tokens: NEW_TOKENS,
    do_sample: false,
  })) as transformers.Tensor;
  const seconds = (performance.now() - start) / 1000;
  const width = output.dims[1] as number;
  if (width !== prefix.length + NEW_TOKENS) {
    fail(`transformers.js returned ${width - prefix.length} new tokens, expected ${NEW_TOKENS}`);
  }
  const row0 = Array.from(output.data as BigInt64Array, Number).slice(prefix.length, width);
  return { tokens: row0, seconds };
}

// Warm-up (arenas, first-run allocations) and the check that both decode the same tokens.
for (const batch of BATCHES) {
  const a = await runOurs(batch);
  const b = await runPeer(batch);
  if (a.tokens.join(",") !== b.tokens.join(",")) {
    fail(
      `the engines chose different tokens at batch ${batch}: ours ${a.tokens.join(",")}, transformers.js ${b.tokens.join(",")}`,
    );
  }
}

const streamedBytes = summarizeOnnxGraph(ours.model.onnxPath).streamedBytes;
log(`ours: ${ourDir}`);
log(
  `transformers.js ${peerVersion}: ${join(hf.root, hf.id)} (the same weights, Hugging Face layout)`,
);
log(
  `onnxruntime-node ${ort.env.versions.common} on both sides; ${threads} intra-op threads; ${repeats} repeats, interleaved; ${NEW_TOKENS} greedy tokens per row`,
);

const steps = { ours: new Map<number, number[]>(), peer: new Map<number, number[]>() };
const ratios = new Map<number, number[]>();
const bandwidths: number[] = [];
for (let r = 0; r < repeats; r++) {
  bandwidths.push(await measureReadBandwidth(2));
  for (const batch of BATCHES) {
    // Alternate which side goes first, so a drift in the host's load does not favour one.
    const order = r % 2 === 0 ? (["ours", "peer"] as const) : (["peer", "ours"] as const);
    const got: Record<string, number> = {};
    for (const side of order) {
      const { seconds } = side === "ours" ? await runOurs(batch) : await runPeer(batch);
      got[side] = NEW_TOKENS / seconds;
      const list = steps[side].get(batch) ?? [];
      list.push(got[side] as number);
      steps[side].set(batch, list);
    }
    const list = ratios.get(batch) ?? [];
    list.push((got.ours as number) / (got.peer as number));
    ratios.set(batch, list);
  }
}
await ours.close();

const bandwidth = median(bandwidths);
const fixed = (value: number, digits: number) => Number(value.toFixed(digits));
const side = (name: "ours" | "peer") =>
  Object.fromEntries(
    BATCHES.map((batch) => {
      const perSecond = median(steps[name].get(batch) as number[]);
      return [
        String(batch),
        {
          stepsPerSecond: fixed(perSecond, 2),
          boundShare: fixed((perSecond * streamedBytes) / bandwidth, 3),
        },
      ];
    }),
  );
log(
  `memory read bandwidth (2 workers, memcmp), one reading per repeat: ${bandwidths.map((b) => `${(b / 1e9).toFixed(2)} GB/s`).join(", ")}`,
);
for (const batch of BATCHES) {
  const o = steps.ours.get(batch) as number[];
  const p = steps.peer.get(batch) as number[];
  const q = ratios.get(batch) as number[];
  log(
    `batch ${batch}: ours ${median(o).toFixed(1)} steps/s (${o.map((s) => s.toFixed(1)).join(", ")}), transformers.js ${median(p).toFixed(1)} (${p.map((s) => s.toFixed(1)).join(", ")}); ratio ${median(q).toFixed(2)}× (per repeat ${q.map((s) => s.toFixed(2)).join(", ")})`,
  );
}

if (flags.json) {
  console.log(
    JSON.stringify({
      ratio: Object.fromEntries(
        BATCHES.map((b) => [String(b), fixed(median(ratios.get(b) as number[]), 3)]),
      ),
      ours: {
        model: ourDir,
        streamedBytesPerStep: streamedBytes,
        bandwidthBytesPerSecond: Math.round(bandwidth),
        batches: side("ours"),
      },
      peer: {
        library: `@huggingface/transformers ${peerVersion}`,
        model: join(hf.root, hf.id),
        batches: side("peer"),
      },
    }),
  );
}
// transformers.js keeps its session open; nothing else holds the process.
process.exit(0);
