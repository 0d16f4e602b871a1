// Checks the stand-in Stable Diffusion ONNX files against the PyTorch reference with onnxruntime-node,
// the runtime the bot uses (Python's onnxruntime is not installed here). Run from the repository root:
//   node training/verify_sd_onnx.mjs test/fixtures/tiny-sd [--atol 0.05]
// For each variant in reference.json's "components": the declared input/output names and types (the
// diffusers ONNX contract), then text_encoder, unet and vae_decoder on the reference inputs, once at
// batch 1 and once at batch 2 (timestep [2]) to exercise the dynamic axes. Prints a JSON report of the
// largest differences; exits 1 when one is over its tolerance: 1e-5 for float32 outputs, 1e-5 plus one
// float16 unit in the last place for float16 outputs (the reference rounds a float64 value, the model a
// float32 one). --atol replaces the 1e-5 (for models with float16 arithmetic, which the reference does
// not follow).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";

const dir = process.argv[2];
const atolAt = process.argv.indexOf("--atol");
const atol = atolAt > 0 ? Number(process.argv[atolAt + 1]) : 1e-5;
if (!dir || !(atol > 0)) {
  console.error("usage: node training/verify_sd_onnx.mjs FIXTURE_DIR [--atol TOLERANCE]");
  process.exit(2);
}
const reference = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8"));

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toHalf(value) {
  // float32 → float16 bits, round to nearest even (the values here are normal, finite numbers).
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && half & 1)) half++;
    return sign | half;
  }
  if (exp >= 31) return sign | 0x7c00;
  let half = (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}
function fromHalf(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
const halfUlp = (v) => 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v) || 2 ** -14)), -14) - 10);

function tensor(type, values, dims) {
  if (type === "float32") return new ort.Tensor("float32", Float32Array.from(values), dims);
  if (type === "float16") return new ort.Tensor("float16", Uint16Array.from(values, toHalf), dims);
  if (type === "int64") return new ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))), dims);
  if (type === "int32") return new ort.Tensor("int32", Int32Array.from(values, Math.trunc), dims);
  throw new Error(`unexpected input type ${type}`);
}
const valuesOf = (t) => (t.type === "float16" ? Array.from(t.data, fromHalf) : Array.from(t.data, Number));
const repeat = (values, n) => Array.from({ length: n }, () => values).flat();

const CONTRACT = {
  text_encoder: { inputs: ["input_ids"], outputs: ["last_hidden_state", "pooler_output"] },
  unet: { inputs: ["sample", "timestep", "encoder_hidden_states"], outputs: ["out_sample"] },
  vae_decoder: { inputs: ["latent_sample"], outputs: ["sample"] },
};

const report = {};
let failed = false;
function compare(label, got, want, outputType) {
  if (got.length !== want.length) throw new Error(`${label}: ${got.length} values, reference has ${want.length}`);
  let worst = 0;
  let worstExcess = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < got.length; i++) {
    const diff = Math.abs(got[i] - want[i]);
    const tol = atol + (outputType === "float16" ? halfUlp(want[i]) : 0);
    worst = Math.max(worst, diff);
    worstExcess = Math.max(worstExcess, diff - tol);
  }
  const ok = worstExcess <= 0;
  if (!ok) failed = true;
  report[label] = { maxAbsDiff: worst, ok };
}

for (const [variant, comp] of Object.entries(reference.components)) {
  const vdir = join(dir, reference.variants[variant].dir);
  const sessions = {};
  for (const [name, io] of Object.entries(CONTRACT)) {
    const s = await ort.InferenceSession.create(join(vdir, name, "model.onnx"));
    if (JSON.stringify(s.inputNames) !== JSON.stringify(io.inputs) || JSON.stringify(s.outputNames) !== JSON.stringify(io.outputs)) {
      throw new Error(`${variant}/${name}: inputs ${s.inputNames} outputs ${s.outputNames}, contract: ${io.inputs} → ${io.outputs}`);
    }
    sessions[name] = s;
  }
  const typeOf = (name, input) => sessions[name].inputMetadata.find((m) => m.name === input).type;
  const outTypeOf = (name, output) => sessions[name].outputMetadata.find((m) => m.name === output).type;
  report[`${variant}/types`] = Object.fromEntries(
    Object.entries(CONTRACT).map(([name, io]) => [
      name,
      [...io.inputs.map((i) => `${i}:${typeOf(name, i)}`), ...io.outputs.map((o) => `${o}:${outTypeOf(name, o)}`)],
    ]),
  );

  for (const batch of [1, 2]) {
    const tag = `${variant}/batch${batch}`;
    const ids = repeat(comp.input_ids, batch);
    const text = await sessions.text_encoder.run({ input_ids: tensor(typeOf("text_encoder", "input_ids"), ids, [batch, 77]) });
    compare(`${tag}/last_hidden_state`, valuesOf(text.last_hidden_state), repeat(comp.last_hidden_state, batch), text.last_hidden_state.type);
    compare(`${tag}/pooler_output`, valuesOf(text.pooler_output), repeat(comp.pooler_output, batch), text.pooler_output.type);

    const u = comp.unet;
    const dims = [batch, ...u.sample_dims.slice(1)];
    const hiddenDims = [batch, 77, comp.last_hidden_state.length / 77];
    const unet = await sessions.unet.run({
      sample: tensor(typeOf("unet", "sample"), repeat(u.sample, batch), dims),
      timestep: tensor(typeOf("unet", "timestep"), repeat([u.timestep], batch), [batch]),
      encoder_hidden_states: tensor(typeOf("unet", "encoder_hidden_states"), repeat(comp.last_hidden_state, batch), hiddenDims),
    });
    compare(`${tag}/out_sample`, valuesOf(unet.out_sample), repeat(u.out_sample, batch), unet.out_sample.type);

    const v = comp.vae_decoder;
    const vae = await sessions.vae_decoder.run({
      latent_sample: tensor(typeOf("vae_decoder", "latent_sample"), repeat(v.latent_sample, batch), [batch, ...v.latent_dims.slice(1)]),
    });
    compare(`${tag}/sample`, valuesOf(vae.sample), repeat(v.sample, batch), vae.sample.type);
  }
}
console.log(JSON.stringify(report, null, 2));
process.exit(failed ? 1 : 0);
