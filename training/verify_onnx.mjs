// Checks an exported model directory against its golden.json with onnxruntime-node, the runtime the
// bot uses. Run from the repository root (it needs node_modules):
//   node training/verify_onnx.mjs models/tiny-caption-gpt2
// It decodes exactly as the engine does: the first call gets the whole prompt and zero-length past
// tensors, then one token per call with the presents fed back, so a graph that baked in a sequence
// or past length fails here. A graph that returns only each step's keys and values
// (new_key_values.N.*, export_onnx.py --kv-cache buffer) gets them appended to its past here, one
// head at a time, independently of the engine's buffers. The TypeScript test suite does the same
// check with vitest.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node training/verify_onnx.mjs MODEL_DIR");
  process.exit(2);
}
const meta = JSON.parse(readFileSync(join(dir, "imagine-model.json"), "utf8"));
const golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8"));
const { nLayer, nHead, nEmbd, vocabSize } = meta.architecture;
const headDim = nEmbd / nHead;
const tol = golden.tolerance ?? 1e-4;
const session = await ort.InferenceSession.create(join(dir, meta.onnx));
const stepOnly = session.outputNames.includes("new_key_values.0.key");

/** past [1, nHead, L, headDim] + fresh [1, nHead, 1, headDim] -> [1, nHead, L + 1, headDim]. */
const appended = (past, fresh) => {
  const length = past.dims[2];
  const data = new Float32Array(nHead * (length + 1) * headDim);
  for (let h = 0; h < nHead; h++) {
    data.set(past.data.subarray(h * length * headDim, (h + 1) * length * headDim), h * (length + 1) * headDim);
    data.set(fresh.data.subarray(h * headDim, (h + 1) * headDim), (h * (length + 1) + length) * headDim);
  }
  return new ort.Tensor("float32", data, [1, nHead, length + 1, headDim]);
};

const int64 = (values, dims) => new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), dims);
let worst = 0;
const check = (what, got, want) => {
  const diff = Math.abs(got - want);
  worst = Math.max(worst, diff);
  if (!(diff <= tol)) throw new Error(`${what}: onnx ${got} vs torch ${want} (|diff| ${diff} > ${tol})`);
};

const ids = golden.inputIds;
let feeds = {
  input_ids: int64(ids, [1, ids.length]),
  attention_mask: int64(ids.map(() => 1), [1, ids.length]),
  position_ids: int64(ids.map((_, i) => i), [1, ids.length]),
};
for (let i = 0; i < nLayer; i++) {
  for (const kv of ["key", "value"]) {
    feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [1, nHead, 0, headDim]);
  }
}
let out = await session.run(feeds);
let past = feeds;
// What the next call's past is: the graph's presents, or its past with this step's entries appended.
const nextPast = (name, layer, kv) =>
  stepOnly ? (name === "prefix" ? out[`new_key_values.${layer}.${kv}`] : appended(past[`past_key_values.${layer}.${kv}`], out[`new_key_values.${layer}.${kv}`]))
    : out[`present.${layer}.${kv}`];
let call = "prefix";
const logits = out.logits.data;
golden.logits.positions.forEach((p, pi) => {
  golden.logits.tokenIds.forEach((v, vi) => check(`logits[${p}, ${v}]`, logits[p * vocabSize + v], golden.logits.values[pi][vi]));
});
const last = new Float32Array(Buffer.from(golden.lastLogitsBase64, "base64").buffer.slice(0));
const lastOffset = (ids.length - 1) * vocabSize;
for (let v = 0; v < vocabSize; v++) check(`last logits[${v}]`, logits[lastOffset + v], last[v]);

// Cached greedy decoding.
let length = ids.length;
const tokens = [];
for (let step = 0; step < golden.greedy.steps; step++) {
  const data = out.logits.data;
  const offset = (out.logits.dims[1] - 1) * vocabSize;
  let best = 0;
  for (let v = 1; v < vocabSize; v++) if (data[offset + v] > data[offset + best]) best = v;
  tokens.push(best);
  check(`greedy step ${step} logit`, data[offset + best], golden.greedy.logits[step]);
  if (best !== golden.greedy.tokens[step]) throw new Error(`greedy step ${step}: onnx chose ${best}, torch ${golden.greedy.tokens[step]}`);
  if (step === golden.greedy.steps - 1) break;
  length += 1;
  feeds = {
    input_ids: int64([best], [1, 1]),
    attention_mask: int64(Array(length).fill(1), [1, length]),
    position_ids: int64([length - 1], [1, 1]),
  };
  for (let i = 0; i < nLayer; i++) {
    for (const kv of ["key", "value"]) feeds[`past_key_values.${i}.${kv}`] = nextPast(call, i, kv);
  }
  const pastLength = feeds["past_key_values.0.key"].dims[2];
  if (pastLength !== length - 1) throw new Error(`past length ${pastLength} != ${length - 1}`);
  past = feeds;
  call = "step";
  out = await session.run(feeds);
}
console.log(`ok: ${dir} matches golden.json (max |diff| ${worst.toExponential(2)}, greedy ${tokens.length} steps via KV cache)`);
