/**
 * Stable Diffusion on onnxruntime-node: CLIP text encoder → UNet denoising loop → VAE decoder,
 * the way diffusers' OnnxStableDiffusionPipeline runs a diffusers ONNX export.
 *
 * - Input and output types are read from each session's metadata: input_ids int32 or int64,
 *   float16 or float32 activations (fp16 exports), a timestep of float32, float16 or int64
 *   (cast the way numpy's astype does: Euler's fractional timesteps truncate for int64).
 * - Classifier-free guidance when guidance > 1: the negative prompt (empty by default) and the
 *   prompt run as one batch of 2 (two batch-1 runs where the export fixes the batch at 1);
 *   noise = uncond + guidance · (cond − uncond).
 * - Noise comes from the seed only (tensors.ts gaussianSource), so the same prompt, seed and
 *   settings give the same latents and, through sharp, the same PNG bytes on the same machine.
 * - The signal is checked before each step and before decoding; onStep reports each step.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { BotError, UserError } from "../../errors.js";
import type { ImageRequest, Logger } from "../../types.js";
import type { SdModelDirectory } from "./modelDir.js";
import { createSchedule, type Schedule, type SchedulerConfig } from "./schedulers.js";
import { fromHalf, gaussianSource, toHalf } from "./tensors.js";
import { type ClipTokenizer, loadClipTokenizer } from "./tokenizer.js";

export type Device = "auto" | "cpu" | "cuda";

export interface SessionSettings {
  device: Device;
  /** onnxruntime intra-op threads; 0 = onnxruntime's default (every core). */
  threads: number;
  /**
   * onnxruntime's CPU memory arena; default off. The arena keeps a run's activations and grows
   * in power-of-two chunks: at 512×512 the bench's resident memory was 3.2 GB with it against
   * 1.6 GB without (weights + onnxruntime's reported activation peaks: 1.5 GB).
   */
  memoryArena?: boolean;
  /**
   * onnxruntime's memory pattern (plans a run's activation buffers from the previous run of the
   * same shapes); default on, as in onnxruntime.
   */
  memoryPattern?: boolean;
  /**
   * Let onnxruntime's intra-op threads spin-wait for work between kernels (onnxruntime's
   * default); default off, as for the prompt decoder: on a CPU shared with other processes a
   * spinning thread burns the time slices the other threads of the same kernel need.
   */
  spinning?: boolean;
  logger?: Logger;
}

export interface DenoiseRequest extends ImageRequest {
  /** Replaces the seeded noise (tests feed the Python reference's): [1,4,h/8,w/8] unit Gaussian. */
  initialNoise?: Float32Array;
  /** Replaces the seeded per-step noise of ancestral samplers, one array per step. */
  stepNoise?: Float32Array[];
  /** Called with the latents after each step (tests compare them with the reference). */
  onLatents?: (step: number, latents: Float32Array) => void;
}

export interface Denoised {
  /** Row-major RGB, 3 bytes per pixel. */
  rgb: Uint8Array;
  width: number;
  height: number;
  latents: Float32Array;
  /** Time inside the three models, for the benchmark's overhead figure. */
  modelMs: { textEncoder: number; unet: number; vae: number };
  /**
   * Process CPU time (user + system, all threads) during each model's runs: the benchmark's
   * work measure on a shared host, where wall time also counts other processes' time slices.
   */
  modelCpuMs: { textEncoder: number; unet: number; vae: number };
}

interface Port {
  name: string;
  type: ort.Tensor.Type;
  dims: readonly (number | string)[];
}

/** One model's session and the types its inputs and outputs declare. */
class Model {
  constructor(
    readonly session: ort.InferenceSession,
    readonly path: string,
  ) {}

  input(preferred: string, fallbackIndex = 0): Port {
    return port(this.session.inputMetadata, preferred, fallbackIndex, this.path, "input");
  }

  output(preferred: string, fallbackIndex = 0): Port {
    return port(this.session.outputMetadata, preferred, fallbackIndex, this.path, "output");
  }
}

function port(
  list: readonly ort.InferenceSession.ValueMetadata[],
  preferred: string,
  fallbackIndex: number,
  path: string,
  what: string,
): Port {
  const found = list.find((m) => m.name === preferred) ?? list[fallbackIndex];
  if (!found?.isTensor) {
    throw new UserError("MODEL_INCONSISTENT", `${path} has no tensor ${what} ${preferred}.`);
  }
  return { name: found.name, type: found.type, dims: found.shape };
}

const FLOAT_TYPES = new Set<ort.Tensor.Type>(["float32", "float16"]);

export class StableDiffusionPipeline {
  readonly tokenizer: ClipTokenizer;
  private readonly ports: {
    inputIds: Port;
    hidden: Port;
    sample: Port;
    timestep: Port;
    encoderHidden: Port;
    noisePrediction: Port;
    latentSample: Port;
    image: Port;
  };
  private closed = false;
  private readonly running = new Set<Promise<Denoised>>();

  private constructor(
    readonly model: SdModelDirectory,
    readonly scheduler: SchedulerConfig,
    private readonly textEncoder: Model,
    private readonly unet: Model,
    private readonly vae: Model,
    /** The execution provider the sessions run on. */
    readonly provider: "cpu" | "cuda",
  ) {
    this.tokenizer = loadClipTokenizer(model.tokenizer, `${model.dir}/tokenizer`);
    this.ports = {
      inputIds: textEncoder.input("input_ids"),
      hidden: textEncoder.output("last_hidden_state"),
      sample: unet.input("sample"),
      timestep: unet.input("timestep", 1),
      encoderHidden: unet.input("encoder_hidden_states", 2),
      noisePrediction: unet.output("out_sample"),
      latentSample: vae.input("latent_sample"),
      image: vae.output("sample"),
    };
    const {
      inputIds,
      timestep,
      sample,
      encoderHidden,
      latentSample,
      hidden,
      noisePrediction,
      image,
    } = this.ports;
    const problems: string[] = [];
    if (inputIds.type !== "int32" && inputIds.type !== "int64") {
      problems.push(`text_encoder input ${inputIds.name} is ${inputIds.type}, not int32/int64`);
    }
    if (!["float32", "float16", "int64"].includes(timestep.type)) {
      problems.push(`unet input ${timestep.name} is ${timestep.type}, not float32/float16/int64`);
    }
    for (const [where, p] of [
      ["text_encoder output", hidden],
      ["unet input", sample],
      ["unet input", encoderHidden],
      ["unet output", noisePrediction],
      ["vae_decoder input", latentSample],
      ["vae_decoder output", image],
    ] as const) {
      if (!FLOAT_TYPES.has(p.type))
        problems.push(`${where} ${p.name} is ${p.type}, not float32/float16`);
    }
    if (problems.length > 0) {
      throw new UserError("MODEL_INCONSISTENT", `${model.dir}: ${problems.join("; ")}.`);
    }
  }

  static async load(
    model: SdModelDirectory,
    scheduler: SchedulerConfig,
    settings: SessionSettings,
  ): Promise<StableDiffusionPipeline> {
    const provider = await chooseProvider(model, settings);
    const open = (path: string) => openSession(path, provider, settings);
    const sessions: ort.InferenceSession[] = [];
    try {
      for (const path of [model.textEncoder, model.unet, model.vaeDecoder])
        sessions.push(await open(path));
      const [text, unet, vae] = sessions as [
        ort.InferenceSession,
        ort.InferenceSession,
        ort.InferenceSession,
      ];
      return new StableDiffusionPipeline(
        model,
        scheduler,
        new Model(text, model.textEncoder),
        new Model(unet, model.unet),
        new Model(vae, model.vaeDecoder),
        provider,
      );
    } catch (error) {
      await Promise.all(sessions.map((s) => s.release()));
      throw error;
    }
  }

  /**
   * Stops renders at their next step and releases the sessions once they have stopped: a
   * session released under a running inference would crash the process.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.running]);
    await Promise.all([this.textEncoder, this.unet, this.vae].map((m) => m.session.release()));
  }

  async generate(request: DenoiseRequest): Promise<Denoised> {
    const run = this.denoise(request);
    this.running.add(run);
    try {
      return await run;
    } finally {
      this.running.delete(run);
    }
  }

  private async denoise(request: DenoiseRequest): Promise<Denoised> {
    this.checkOpen();
    const { width, height, steps, guidance } = request;
    for (const [name, value] of [
      ["width", width],
      ["height", height],
    ] as const) {
      if (!Number.isInteger(value) || value < 8 || value % 8 !== 0) {
        throw new UserError("USAGE", `${name} must be a positive multiple of 8, got ${value}`);
      }
    }
    if (!Number.isFinite(guidance) || guidance < 0) {
      throw new UserError("USAGE", `guidance must be a number ≥ 0, got ${guidance}`);
    }
    const schedule = createSchedule(this.scheduler, steps);
    const modelMs = { textEncoder: 0, unet: 0, vae: 0 };
    const modelCpuMs = { textEncoder: 0, unet: 0, vae: 0 };
    const timed = async <T>(key: keyof typeof modelMs, run: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      try {
        return await run();
      } finally {
        modelMs[key] += performance.now() - start;
        const cpu = process.cpuUsage(cpuStart);
        modelCpuMs[key] += (cpu.user + cpu.system) / 1000;
      }
    };
    checkAbort(request.signal);

    const guided = guidance > 1;
    const prompts = guided ? [request.negativePrompt ?? "", request.prompt] : [request.prompt];
    const hidden = await timed("textEncoder", () => this.encodeText(prompts));

    const shape = [1, 4, height / 8, width / 8];
    const size = 4 * (height / 8) * (width / 8);
    const gaussian = gaussianSource(request.seed);
    const initial = request.initialNoise ?? gaussian(size);
    if (initial.length !== size) {
      throw new UserError("USAGE", `initial noise has ${initial.length} values, not ${size}`);
    }
    let latents: Float32Array = initial.map((x) => x * schedule.initNoiseSigma);

    for (let step = 0; step < schedule.timesteps.length; step++) {
      checkAbort(request.signal);
      this.checkOpen();
      const input = schedule.scaleModelInput(latents, step);
      const output = await timed("unet", () =>
        this.predictNoise(input, shape, schedule, step, hidden, guided ? 2 : 1),
      );
      let noise = output;
      if (guided) {
        noise = new Float32Array(size);
        for (let i = 0; i < size; i++) {
          const uncond = output[i] as number;
          noise[i] = uncond + guidance * ((output[size + i] as number) - uncond);
        }
      }
      const stepNoise = schedule.ancestral
        ? (request.stepNoise?.[step] ?? gaussian(size))
        : undefined;
      latents = schedule.step(noise, step, latents, stepNoise);
      request.onLatents?.(step, latents);
      request.onStep?.(step + 1, schedule.timesteps.length);
    }
    checkAbort(request.signal);
    this.checkOpen();
    const rgb = await timed("vae", () => this.decode(latents, shape));
    return { rgb, width, height, latents, modelMs, modelCpuMs };
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new BotError("ABORTED", "The local Stable Diffusion pipeline was closed");
    }
  }

  /** last_hidden_state for each prompt, concatenated: [n, 77, D]. */
  private async encodeText(prompts: string[]): Promise<{ data: Float32Array; dims: number[] }> {
    const { inputIds, hidden } = this.ports;
    const parts: Float32Array[] = [];
    let dims: number[] = [];
    // One prompt per run: exports commonly fix the text encoder's batch at 1.
    for (const prompt of prompts) {
      const ids = this.tokenizer.encode(prompt);
      const feed =
        inputIds.type === "int64"
          ? new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length])
          : new ort.Tensor("int32", Int32Array.from(ids), [1, ids.length]);
      const out = await this.textEncoder.session.run({ [inputIds.name]: feed });
      const tensor = out[hidden.name] as ort.Tensor;
      parts.push(readFloat(tensor));
      dims = [...tensor.dims];
      disposeAll(out);
    }
    return { data: concat(parts), dims: [prompts.length, ...dims.slice(1)] };
  }

  private async predictNoise(
    input: Float32Array,
    shape: number[],
    schedule: Schedule,
    step: number,
    hidden: { data: Float32Array; dims: number[] },
    batch: number,
  ): Promise<Float32Array> {
    const { sample, timestep, encoderHidden, noisePrediction } = this.ports;
    const t = schedule.timesteps[step] as number;
    const fixedBatch = sample.dims[0] === 1 ? 1 : batch;
    const outputs: Float32Array[] = [];
    const perRow = hidden.data.length / batch;
    for (let row = 0; row < batch; row += fixedBatch) {
      const rows = fixedBatch;
      const samples = rows === 1 ? input : concat(Array.from({ length: rows }, () => input));
      const timestepDims =
        timestep.dims.length === 0
          ? []
          : [typeof timestep.dims[0] === "number" ? timestep.dims[0] : 1];
      const timestepCount = timestepDims.length === 0 ? 1 : (timestepDims[0] as number);
      const feeds: Record<string, ort.Tensor> = {
        [sample.name]: floatTensor(sample.type, samples, [rows, ...shape.slice(1)]),
        [timestep.name]: timestepTensor(timestep.type, t, timestepDims, timestepCount),
        [encoderHidden.name]: floatTensor(
          encoderHidden.type,
          hidden.data.subarray(row * perRow, (row + rows) * perRow),
          [rows, ...hidden.dims.slice(1)],
        ),
      };
      const out = await this.unet.session.run(feeds);
      outputs.push(readFloat(out[noisePrediction.name] as ort.Tensor));
      disposeAll(out);
    }
    return outputs.length === 1 ? (outputs[0] as Float32Array) : concat(outputs);
  }

  private async decode(latents: Float32Array, shape: number[]): Promise<Uint8Array> {
    const { latentSample, image } = this.ports;
    const scale = 1 / this.model.vaeScalingFactor;
    const scaled = latents.map((x) => x * scale);
    const out = await this.vae.session.run({
      [latentSample.name]: floatTensor(latentSample.type, scaled, shape),
    });
    const tensor = out[image.name] as ort.Tensor;
    const pixels = readFloat(tensor);
    disposeAll(out);
    const [, channels, h, w] = tensor.dims as [number, number, number, number];
    const [expectH, expectW] = [(shape[2] as number) * 8, (shape[3] as number) * 8];
    if (channels !== 3 || h !== expectH || w !== expectW) {
      throw new UserError(
        "MODEL_INCONSISTENT",
        `${this.model.vaeDecoder} returned an image of shape [${tensor.dims.join(", ")}], expected [1, 3, ${expectH}, ${expectW}].`,
      );
    }
    return toRgb(pixels, h, w);
  }
}

/** [1,3,H,W] in [-1, 1] → row-major RGB bytes: (x/2 + 0.5) clamped to [0, 1], × 255, rounded. */
export function toRgb(pixels: Float32Array, height: number, width: number): Uint8Array {
  const plane = height * width;
  const rgb = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const value = Math.min(Math.max((pixels[c * plane + i] as number) / 2 + 0.5, 0), 1);
      // Math.round rounds halves up, numpy's round to even; a pixel exactly on .5 is rare and
      // the difference is one level.
      rgb[i * 3 + c] = Math.round(value * 255);
    }
  }
  return rgb;
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const reason: unknown = signal.reason;
  if (reason instanceof BotError) throw reason;
  throw new BotError("ABORTED", "The render was cancelled between denoising steps", {
    cause: reason,
  });
}

function floatTensor(type: ort.Tensor.Type, data: Float32Array, dims: number[]): ort.Tensor {
  return type === "float16"
    ? new ort.Tensor("float16", toHalf(data), dims)
    : new ort.Tensor("float32", data, dims);
}

function timestepTensor(
  type: ort.Tensor.Type,
  t: number,
  dims: number[],
  count: number,
): ort.Tensor {
  switch (type) {
    case "int64":
      // numpy's astype(int64) truncates toward zero.
      return new ort.Tensor("int64", new BigInt64Array(count).fill(BigInt(Math.trunc(t))), dims);
    case "float16":
      return new ort.Tensor("float16", toHalf(new Float32Array(count).fill(t)), dims);
    default:
      return new ort.Tensor("float32", new Float32Array(count).fill(t), dims);
  }
}

function readFloat(tensor: ort.Tensor): Float32Array {
  if (tensor.type === "float16") return fromHalf(tensor.data as Uint16Array);
  // A copy: the output's buffer is released with the tensor.
  return Float32Array.from(tensor.data as Float32Array);
}

function disposeAll(outputs: ort.InferenceSession.OnnxValueMapType): void {
  for (const value of Object.values(outputs)) (value as ort.Tensor).dispose?.();
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** CUDA when asked for, or with "auto" when onnxruntime-node lists it and it loads; else CPU. */
async function chooseProvider(
  model: SdModelDirectory,
  settings: SessionSettings,
): Promise<"cpu" | "cuda"> {
  if (settings.device === "cpu") return "cpu";
  // onnxruntime-node lists CUDA even where its provider library was not installed
  // (ONNXRUNTIME_NODE_INSTALL=skip, macOS); trying it there only logs a load failure.
  const offered =
    ort.listSupportedBackends().some((backend) => backend.name === "cuda") &&
    cudaProviderInstalled();
  if (!offered) {
    if (settings.device === "cuda") {
      throw new UserError(
        "MODEL_DIR_INVALID",
        "image.local.device is cuda (SD_DEVICE), but this onnxruntime-node build offers no CUDA execution provider; set it to auto or cpu.",
      );
    }
    return "cpu";
  }
  try {
    // The smallest of the three models proves the CUDA provider loads before the UNet is read.
    const probe = await openSession(model.textEncoder, "cuda", { ...settings, memoryArena: true });
    await probe.release();
    return "cuda";
  } catch (error) {
    if (settings.device === "cuda") {
      throw new UserError(
        "MODEL_DIR_INVALID",
        `image.local.device is cuda (SD_DEVICE), but the CUDA execution provider did not load: ${(error as Error).message}`,
        { cause: error },
      );
    }
    settings.logger?.warn(
      { err: error },
      "CUDA execution provider unavailable; rendering on the CPU",
    );
    return "cpu";
  }
}

/** The CUDA provider library beside onnxruntime-node's binding (its install script fetches it on Linux x64). */
function cudaProviderInstalled(): boolean {
  try {
    const root = dirname(createRequire(import.meta.url).resolve("onnxruntime-node/package.json"));
    const folder = join(root, "bin", "napi-v6", process.platform, process.arch);
    const library =
      process.platform === "win32"
        ? "onnxruntime_providers_cuda.dll"
        : "libonnxruntime_providers_cuda.so";
    return existsSync(join(folder, library));
  } catch {
    return false;
  }
}

async function openSession(
  path: string,
  provider: "cpu" | "cuda",
  settings: SessionSettings,
): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(path, {
      executionProviders: provider === "cuda" ? ["cuda", "cpu"] : ["cpu"],
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      ...(settings.threads ? { intraOpNumThreads: settings.threads } : {}),
      enableCpuMemArena: settings.memoryArena ?? false,
      enableMemPattern: settings.memoryPattern ?? true,
      extra: { session: { intra_op: { allow_spinning: settings.spinning ? "1" : "0" } } },
      logSeverityLevel: 3,
    });
  } catch (error) {
    throw new UserError(
      "MODEL_DIR_INVALID",
      `${path} could not be loaded by onnxruntime (${provider}): ${(error as Error).message}`,
      { cause: error },
    );
  }
}
