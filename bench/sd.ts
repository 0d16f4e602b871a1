/**
 * The local Stable Diffusion backend at 512×512 on this machine's CPU, with the bench-size
 * stand-in (training/make_tiny_sd.py --preset bench: a UNet of 98M parameters with the SD
 * operator mix — convolutions, cross-attention with 64-wide heads, group norm — written once
 * into .cache/).
 *
 * Figures, all from one run:
 * - the session settings under test: --fused-attention (the stand-in exported with onnxruntime's
 *   com.microsoft MultiHeadAttention), --spinning, --arena, --no-mem-pattern, --threads;
 * - ms per denoising step (UNet time ÷ steps; no guidance, so one UNet call per step);
 * - the bound: FLOPs of one UNet call (make_tiny_sd.py --flops: 2 per multiply-add of every
 *   Conv2d, Linear and attention matmul) ÷ the best GFLOP/s onnxruntime reaches here on a big
 *   MatMul (2048³) and a big Conv (320→320, 3×3, 64×64), measured in the same process right
 *   after the render; efficiency = bound ÷ measured (goal ≥ 50%);
 * - pipeline overhead: the render's wall time outside the three models (tokenizer, noise,
 *   scheduler steps, guidance arithmetic, fp16 conversion, pixels), per step, as % of a step
 *   (goal < 5%);
 * - resident memory: peak RSS of the process (VmHWM) minus its RSS before the models loaded,
 *   against the weights (initializer bytes of the three graphs) plus the activations
 *   onnxruntime reports (its profiler's mem_in_use_peak for one call of each model at this
 *   size) (goal: within 10%).
 *
 *   npm run bench:sd                                   # fp16 stand-in, 4 steps
 *   npm run bench:sd -- --dtype fp32 --steps 3
 *   npm run bench:sd -- --arena                        # onnxruntime's CPU memory arena on
 *   npm run bench:sd -- --fused-attention              # attention as one MultiHeadAttention node
 *   npm run bench:sd -- --spinning --threads 2         # spin-waiting intra-op threads, 2 of them
 *   npm run bench:sd -- --no-mem-pattern               # onnxruntime's memory pattern off
 *   npm run bench:sd -- --fp16-arithmetic              # float16 activations too, as fp16 Hub exports
 *   npm run bench:sd -- --maker /path/to/make_tiny_sd.py --model DIR
 *   npm run -s bench:sd -- --json                      # last line: one JSON object
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { readSdModelDirectory } from "../src/core/image/local/modelDir.js";
import { StableDiffusionPipeline } from "../src/core/image/local/pipeline.js";
import { schedulerConfigFrom } from "../src/core/image/local/schedulers.js";
import { summarizeOnnxGraph } from "./lib/onnxGraph.js";

const ROOT = resolve(import.meta.dirname, "..");
const { values: flags } = parseArgs({
  options: {
    model: { type: "string" },
    dtype: { type: "string", default: "fp16" },
    maker: { type: "string", default: join(ROOT, "training", "make_tiny_sd.py") },
    python: { type: "string", default: process.env.IMAGINE_PYTHON ?? "/usr/bin/python3" },
    steps: { type: "string", default: "4" },
    size: { type: "string", default: "512" },
    threads: { type: "string", default: "0" },
    arena: { type: "boolean", default: false },
    "no-mem-pattern": { type: "boolean", default: false },
    spinning: { type: "boolean", default: false },
    "fused-attention": { type: "boolean", default: false },
    "fp16-arithmetic": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

const log = flags.json ? () => {} : (line: string) => console.log(line);
const fail = (message: string): never => {
  console.error(`bench:sd: ${message}`);
  process.exit(2);
};

const steps = Number(flags.steps);
const size = Number(flags.size);
const threads = Number(flags.threads);
if (!Number.isInteger(steps) || steps < 1) fail("--steps must be a whole number ≥ 1");
if (!Number.isInteger(size) || size % 8 !== 0) fail("--size must be a multiple of 8");
if (flags.dtype !== "fp16" && flags.dtype !== "fp32") fail("--dtype must be fp16 or fp32");
if (flags["fp16-arithmetic"] && flags.dtype !== "fp16")
  fail("--fp16-arithmetic needs --dtype fp16");
if (flags["fp16-arithmetic"] && flags["fused-attention"])
  fail("--fused-attention cannot be combined with --fp16-arithmetic (the CPU kernel is float32)");
if (flags.model && flags["fused-attention"])
  fail(
    "--fused-attention chooses the stand-in to write; with --model, the model's own graph decides",
  );
const variant = `${flags.dtype}${flags["fp16-arithmetic"] ? "-arithmetic" : ""}${flags["fused-attention"] ? "-fused" : ""}`;
if (!existsSync(flags.maker)) fail(`${flags.maker} does not exist (training/make_tiny_sd.py)`);

/** /proc/self/status fields in bytes (Linux). */
function procStatus(field: "VmRSS" | "VmHWM"): number {
  const match = readFileSync("/proc/self/status", "utf8").match(
    new RegExp(`${field}:\\s+(\\d+) kB`),
  );
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

const MB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

// 1. The stand-in model and its FLOPs.
const modelDir = resolve(flags.model ?? join(ROOT, ".cache", `sd-bench-${variant}`));
if (!flags.model && !existsSync(join(modelDir, "model_index.json"))) {
  log(`writing the bench stand-in into ${modelDir} (a few minutes, once)…`);
  execFileSync(
    flags.python,
    [
      flags.maker,
      "--preset",
      "bench",
      "--dtype",
      flags.dtype,
      ...(flags["fp16-arithmetic"] ? ["--fp16-arithmetic"] : []),
      ...(flags["fused-attention"] ? ["--fused-attention"] : []),
      "--out",
      modelDir,
    ],
    {
      stdio: flags.json ? "ignore" : "inherit",
    },
  );
}
const flopsReport = JSON.parse(
  execFileSync(
    flags.python,
    [flags.maker, "--preset", "bench", "--flops", "--flops-size", String(size)],
    {
      encoding: "utf8",
    },
  ),
) as { unet_flops: number; unet_parameters: number };
const unetFlops = flopsReport.unet_flops;

// 2. The render: resident memory and time per step.
const rssBefore = procStatus("VmRSS");
const model = readSdModelDirectory(modelDir);
const scheduler = schedulerConfigFrom(model.scheduler, modelDir, "euler");
const pipeline = await StableDiffusionPipeline.load(model, scheduler, {
  device: "cpu",
  threads,
  memoryArena: flags.arena,
  memoryPattern: !flags["no-mem-pattern"],
  spinning: flags.spinning,
});
const rssLoaded = procStatus("VmRSS");
const request = {
  prompt: "a lighthouse on a cliff at sunset, oil painting",
  width: size,
  height: size,
  guidance: 1,
  seed: 1,
};
// Warm-up: first-run allocations and kernel selection are not a step's cost.
await pipeline.generate({ ...request, steps: 1 });
const started = performance.now();
const result = await pipeline.generate({ ...request, steps });
const wallMs = performance.now() - started;
const peakRss = procStatus("VmHWM");
await pipeline.close();

const { textEncoder, unet, vae } = result.modelMs;
const stepMs = unet / steps;
const overheadMs = wallMs - textEncoder - unet - vae;
const overheadShare = overheadMs / steps / stepMs;

// 3. Throughput onnxruntime reaches here on a big MatMul and a big Conv, same threads.
const scratch = join(ROOT, ".cache", "sd-bench-throughput");
execFileSync(
  flags.python,
  [
    "-c",
    `
import os, sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
def save(graph, name):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
    onnx.save(m, os.path.join(out, name))
n = 2048
save(helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
     [helper.make_tensor_value_info("a", T.FLOAT, [n, n]), helper.make_tensor_value_info("b", T.FLOAT, [n, n])],
     [helper.make_tensor_value_info("c", T.FLOAT, [n, n])]), "matmul.onnx")
w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((320, 320, 3, 3)).astype(np.float32) * 0.02, "w")
save(helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
     [helper.make_tensor_value_info("x", T.FLOAT, [1, 320, 64, 64])],
     [helper.make_tensor_value_info("y", T.FLOAT, [1, 320, 64, 64])], [w]), "conv.onnx")
`,
    scratch,
  ],
  { stdio: "ignore" },
);

/**
 * Best of 5 runs: wall-clock GFLOP/s with onnxruntime's default spin-waiting threads (the bound),
 * and GFLOP per CPU-second with idle-waiting threads (spinning would bill its waiting as work).
 */
async function gflops(
  file: string,
  feeds: Record<string, ort.Tensor>,
  flops: number,
): Promise<{ wall: number; cpu: number }> {
  const best = async (spinning: boolean, clock: () => number): Promise<number> => {
    const session = await ort.InferenceSession.create(join(scratch, file), {
      graphOptimizationLevel: "all",
      ...(threads ? { intraOpNumThreads: threads } : {}),
      extra: { session: { intra_op: { allow_spinning: spinning ? "1" : "0" } } },
    });
    await session.run(feeds);
    let fastest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 5; i++) {
      const t0 = clock();
      await session.run(feeds);
      fastest = Math.min(fastest, clock() - t0);
    }
    await session.release();
    return flops / (fastest / 1000) / 1e9;
  };
  const cpuMs = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  return { wall: await best(true, () => performance.now()), cpu: await best(false, cpuMs) };
}
const random = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.5);
const matmulGflops = await gflops(
  "matmul.onnx",
  {
    a: new ort.Tensor("float32", random(2048 * 2048), [2048, 2048]),
    b: new ort.Tensor("float32", random(2048 * 2048), [2048, 2048]),
  },
  2 * 2048 ** 3,
);
const convGflops = await gflops(
  "conv.onnx",
  { x: new ort.Tensor("float32", random(320 * 64 * 64), [1, 320, 64, 64]) },
  2 * 320 * 320 * 9 * 64 * 64,
);
const machineGflops = Math.max(matmulGflops.wall, convGflops.wall);
const boundMs = (unetFlops / (machineGflops * 1e9)) * 1000;
// The same ratio in CPU time: robust to other processes on the host (wall time is not). Only
// meaningful without --spinning, where the UNet's CPU time is its work.
const cpuGflopsBound = Math.max(matmulGflops.cpu, convGflops.cpu);
const unetCpuMsPerStep = result.modelCpuMs.unet / steps;
const cpuEfficiency = unetFlops / 1e9 / (unetCpuMsPerStep / 1000) / cpuGflopsBound;

// 4. Weights and the activations onnxruntime reports (profiler mem_in_use_peak per model).
const weights = [model.textEncoder, model.unet, model.vaeDecoder].map(
  (file) => summarizeOnnxGraph(file).initializerBytes,
);
const weightBytes = weights.reduce((a, b) => a + b, 0);

async function activationPeak(file: string, feeds: Record<string, ort.Tensor>): Promise<number> {
  const prefix = join(scratch, `profile-${Date.now()}`);
  const session = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: "all",
    enableProfiling: true,
    profileFilePrefix: prefix,
    ...(threads ? { intraOpNumThreads: threads } : {}),
  });
  await session.run(feeds);
  session.endProfiling();
  await session.release();
  const dir = scratch;
  const written = execFileSync("ls", [dir], { encoding: "utf8" })
    .split("\n")
    .filter((name) => name.startsWith(prefix.slice(dir.length + 1)) && name.endsWith(".json"));
  let peak = 0;
  for (const name of written) {
    const events = JSON.parse(readFileSync(join(dir, name), "utf8")) as {
      cat?: string;
      args?: { mem_in_use_peak?: string };
    }[];
    for (const event of events) {
      if (event.cat === "Node") peak = Math.max(peak, Number(event.args?.mem_in_use_peak ?? 0));
    }
    rmSync(join(dir, name));
  }
  return peak;
}
const half = flags.dtype === "fp16";
const floatTensor = (n: number, dims: number[]) =>
  half
    ? new ort.Tensor("float16", new Uint16Array(n), dims)
    : new ort.Tensor("float32", new Float32Array(n), dims);
const textSession = await ort.InferenceSession.create(model.textEncoder);
const idsType = (textSession.inputMetadata[0] as { type: string }).type;
const timestepType = await (async () => {
  const s = await ort.InferenceSession.create(model.unet);
  const meta = s.inputMetadata.find((m) => m.name === "timestep") as { type: string };
  const hidden = s.inputMetadata.find((m) => m.name === "encoder_hidden_states") as {
    shape: readonly (number | string)[];
  };
  await s.release();
  return { type: meta.type, dim: Number(hidden.shape[2]) };
})();
await textSession.release();
const latent = size / 8;
const ids =
  idsType === "int64"
    ? new ort.Tensor("int64", new BigInt64Array(77), [1, 77])
    : new ort.Tensor("int32", new Int32Array(77), [1, 77]);
const timestep =
  timestepType.type === "int64"
    ? new ort.Tensor("int64", BigInt64Array.of(999n), [1])
    : timestepType.type === "float16"
      ? new ort.Tensor("float16", Uint16Array.of(0x63ce), [1])
      : new ort.Tensor("float32", Float32Array.of(999), [1]);
const activations = [
  await activationPeak(model.textEncoder, { input_ids: ids }),
  await activationPeak(model.unet, {
    sample: floatTensor(4 * latent * latent, [1, 4, latent, latent]),
    timestep,
    encoder_hidden_states: floatTensor(77 * timestepType.dim, [1, 77, timestepType.dim]),
  }),
  await activationPeak(model.vaeDecoder, {
    latent_sample: floatTensor(4 * latent * latent, [1, 4, latent, latent]),
  }),
];
const activationBytes = activations.reduce((a, b) => a + b, 0);
const residentBytes = peakRss - rssBefore;
const expectedBytes = weightBytes + activationBytes;

const figures = {
  model: modelDir,
  dtype: variant,
  size,
  steps,
  threads: threads || "onnxruntime default (all cores)",
  memoryArena: flags.arena,
  memoryPattern: !flags["no-mem-pattern"],
  spinning: flags.spinning,
  fusedAttention: flags["fused-attention"],
  cpus: (await import("node:os")).cpus().length,
  unetParameters: flopsReport.unet_parameters,
  unetGflops: unetFlops / 1e9,
  msPerStep: stepMs,
  machineGflops: { matmul: matmulGflops.wall, conv: convGflops.wall },
  boundMsPerStep: boundMs,
  efficiency: boundMs / stepMs,
  gflopsPerCpuSecond: { matmul: matmulGflops.cpu, conv: convGflops.cpu },
  unetCpuMsPerStep,
  cpuEfficiency,
  overheadMsPerStep: overheadMs / steps,
  overheadShare,
  modelMs: result.modelMs,
  wallMs,
  memory: {
    rssBeforeLoad: rssBefore,
    rssAfterLoad: rssLoaded,
    peakRss,
    resident: residentBytes,
    weights,
    activations,
    expected: expectedBytes,
    ratio: residentBytes / expectedBytes,
  },
};

log(
  `model ${modelDir} (${variant}), ${size}×${size}, ${steps} steps, no guidance, memory arena ${flags.arena ? "on" : "off"}, memory pattern ${flags["no-mem-pattern"] ? "off" : "on"}, threads ${threads || "all cores"} ${flags.spinning ? "spinning" : "idle-waiting"}`,
);
log(
  `UNet: ${(flopsReport.unet_parameters / 1e6).toFixed(1)}M parameters, ${(unetFlops / 1e9).toFixed(1)} GFLOP per call`,
);
log(
  `measured throughput: MatMul 2048³ ${matmulGflops.wall.toFixed(1)} GFLOP/s, Conv 320→320 3×3 @64² ${convGflops.wall.toFixed(1)} GFLOP/s`,
);
log(
  `ms per step: ${stepMs.toFixed(0)} ms; bound ${boundMs.toFixed(0)} ms (FLOPs ÷ ${machineGflops.toFixed(1)} GFLOP/s) → ${(100 * figures.efficiency).toFixed(0)}% of the bound (goal ≥ 50%)`,
);
log(
  `in CPU time (robust to a shared host${flags.spinning ? "; not meaningful with --spinning" : ""}): UNet ${unetCpuMsPerStep.toFixed(0)} CPU-ms per step = ${(unetFlops / 1e9 / (unetCpuMsPerStep / 1000)).toFixed(1)} GFLOP per CPU-second vs ${cpuGflopsBound.toFixed(1)} for MatMul/Conv (MatMul ${matmulGflops.cpu.toFixed(1)}, Conv ${convGflops.cpu.toFixed(1)}) → ${(100 * cpuEfficiency).toFixed(0)}%`,
);
log(
  `pipeline overhead outside the three models: ${(overheadMs / steps).toFixed(1)} ms per step = ${(100 * overheadShare).toFixed(2)}% of a step (goal < 5%); text encoder ${textEncoder.toFixed(0)} ms, VAE ${vae.toFixed(0)} ms`,
);
log(
  `resident: ${MB(residentBytes)} (peak RSS ${MB(peakRss)} − ${MB(rssBefore)} before loading; ${MB(rssLoaded - rssBefore)} after loading) vs weights ${MB(weightBytes)} + activations ${MB(activationBytes)} (onnxruntime's mem_in_use_peak: text ${MB(activations[0] as number)}, UNet ${MB(activations[1] as number)}, VAE ${MB(activations[2] as number)}) = ${MB(expectedBytes)} → ${(100 * figures.memory.ratio).toFixed(0)}% (goal within 10%)`,
);
if (flags.json) console.log(JSON.stringify(figures));
