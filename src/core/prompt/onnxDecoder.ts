/**
 * One loaded GPT-2 ONNX decoder with a KV cache. Input and output names follow Hugging Face's
 * ONNX exports (input_ids, attention_mask, position_ids, past_key_values.N.key|value →
 * logits, present.N.key|value; merged decoders add use_cache_branch), so a published export
 * loads as well as ours. The session is created once and shared: onnxruntime allows concurrent
 * run() calls on one session.
 */
import * as ort from "onnxruntime-node";
import { BotError, UserError } from "../errors.js";
import { type ModelDirectory, readModelDirectory } from "./modelDir.js";

/** Per layer: key and value, each [batch, nHead, length, headDim], float32. */
export interface KvCache {
  batch: number;
  length: number;
  keys: ort.Tensor[];
  values: ort.Tensor[];
}

export interface DecoderStep {
  /** Logits of each row's last position: rows × vocab, row-major. */
  lastLogits: Float32Array;
  vocab: number;
  cache: KvCache;
}

export interface DecoderOptions {
  /** onnxruntime intra-op threads; 0 = onnxruntime's default (every core). */
  threads?: number;
}

export class Gpt2OnnxDecoder {
  readonly nLayer: number;
  readonly nHead: number;
  readonly headDim: number;
  private readonly hasPositionIds: boolean;
  private readonly hasCacheBranch: boolean;
  private closed = false;

  private constructor(
    readonly model: ModelDirectory,
    private readonly session: ort.InferenceSession,
  ) {
    const { architecture } = model.metadata;
    this.nLayer = architecture.nLayer;
    this.nHead = architecture.nHead;
    this.headDim = architecture.nEmbd / architecture.nHead;
    this.hasPositionIds = session.inputNames.includes("position_ids");
    this.hasCacheBranch = session.inputNames.includes("use_cache_branch");
  }

  static async load(dir: string, options: DecoderOptions = {}): Promise<Gpt2OnnxDecoder> {
    const model = readModelDirectory(dir);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model.onnxPath, {
        graphOptimizationLevel: "all",
        executionMode: "sequential",
        ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
        logSeverityLevel: 3,
      });
    } catch (error) {
      throw new UserError(
        "MODEL_DIR_INVALID",
        `${model.onnxPath} could not be loaded by onnxruntime: ${(error as Error).message}. Re-export it with training/export_onnx.py.`,
        { cause: error },
      );
    }
    const decoder = new Gpt2OnnxDecoder(model, session);
    try {
      decoder.checkGraph();
    } catch (error) {
      await session.release();
      throw error;
    }
    return decoder;
  }

  /** The graph must agree with imagine-model.json, or decoding would fail mid-request. */
  private checkGraph(): void {
    const { inputNames, outputNames } = this.session;
    const file = this.model.onnxPath;
    const missing: string[] = [];
    for (const name of ["input_ids", "attention_mask"]) {
      if (!inputNames.includes(name)) missing.push(`input ${name}`);
    }
    if (!outputNames.includes("logits")) missing.push("output logits");
    for (let layer = 0; layer < this.nLayer; layer++) {
      for (const kind of ["key", "value"]) {
        if (!inputNames.includes(`past_key_values.${layer}.${kind}`)) {
          missing.push(`input past_key_values.${layer}.${kind}`);
        }
        if (!outputNames.includes(`present.${layer}.${kind}`))
          missing.push(`output present.${layer}.${kind}`);
      }
    }
    if (missing.length > 0) {
      throw new UserError(
        "MODEL_INCONSISTENT",
        `${file} does not match imagine-model.json (nLayer ${this.nLayer}): missing ${missing.join(", ")}. Export it with the KV cache (training/export_onnx.py) or fix architecture in imagine-model.json.`,
      );
    }
    const extraLayer = inputNames.includes(`past_key_values.${this.nLayer}.key`);
    if (extraLayer) {
      throw new UserError(
        "MODEL_INCONSISTENT",
        `${file} has more than the ${this.nLayer} layers that imagine-model.json declares; fix architecture.nLayer.`,
      );
    }
    const pastMeta = this.session.inputMetadata.find((m) => m.name === "past_key_values.0.key");
    if (pastMeta?.isTensor) {
      const [, heads, , dim] = pastMeta.shape;
      if (
        (typeof heads === "number" && heads !== this.nHead) ||
        (typeof dim === "number" && dim !== this.headDim)
      ) {
        throw new UserError(
          "MODEL_INCONSISTENT",
          `${file} has a KV cache of ${heads} heads × ${dim}, but imagine-model.json says ${this.nHead} heads × ${this.headDim}; fix nHead/nEmbd.`,
        );
      }
    }
  }

  /** An empty cache for `batch` rows: the first step runs the whole prefix. */
  emptyCache(batch: number): KvCache {
    const empty = () =>
      new ort.Tensor("float32", new Float32Array(0), [batch, this.nHead, 0, this.headDim]);
    return {
      batch,
      length: 0,
      keys: Array.from({ length: this.nLayer }, empty),
      values: Array.from({ length: this.nLayer }, empty),
    };
  }

  /**
   * Runs `tokens` (rows × seq, every row the same length, no padding) after the cached prefix.
   * Returns the logits of each row's last position and the extended cache.
   */
  async step(tokens: readonly number[][], cache: KvCache): Promise<DecoderStep> {
    const batch = tokens.length;
    const seq = tokens[0]?.length ?? 0;
    if (batch !== cache.batch || seq === 0) {
      throw new BotError(
        "GENERATION_FAILED",
        `decoder step with ${batch} rows × ${seq} tokens on a cache of ${cache.batch} rows`,
      );
    }
    const total = cache.length + seq;
    const inputIds = new BigInt64Array(batch * seq);
    const positions = new BigInt64Array(batch * seq);
    for (let row = 0; row < batch; row++) {
      const rowTokens = tokens[row] as number[];
      for (let i = 0; i < seq; i++) {
        inputIds[row * seq + i] = BigInt(rowTokens[i] as number);
        positions[row * seq + i] = BigInt(cache.length + i);
      }
    }
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor("int64", inputIds, [batch, seq]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(batch * total).fill(1n), [
        batch,
        total,
      ]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor("int64", positions, [batch, seq]);
    if (this.hasCacheBranch)
      feeds.use_cache_branch = new ort.Tensor("bool", [cache.length > 0], [1]);
    for (let layer = 0; layer < this.nLayer; layer++) {
      feeds[`past_key_values.${layer}.key`] = cache.keys[layer] as ort.Tensor;
      feeds[`past_key_values.${layer}.value`] = cache.values[layer] as ort.Tensor;
    }

    const outputs = await this.session.run(feeds);
    const logits = outputs.logits as ort.Tensor;
    const vocab = logits.dims[2] as number;
    const data = logits.data as Float32Array;
    // Only the last position of each row is sampled from; copy it out of the full output.
    const lastLogits = new Float32Array(batch * vocab);
    for (let row = 0; row < batch; row++) {
      const offset = (row * seq + seq - 1) * vocab;
      lastLogits.set(data.subarray(offset, offset + vocab), row * vocab);
    }
    const keys: ort.Tensor[] = [];
    const values: ort.Tensor[] = [];
    for (let layer = 0; layer < this.nLayer; layer++) {
      keys.push(outputs[`present.${layer}.key`] as ort.Tensor);
      values.push(outputs[`present.${layer}.value`] as ort.Tensor);
    }
    return { lastLogits, vocab, cache: { batch, length: total, keys, values } };
  }

  /**
   * A cache whose rows are `rows` of the given one, in that order: repeats a one-row prefix for
   * a batch, and drops rows that have finished so later steps compute only live rows.
   */
  selectRows(cache: KvCache, rows: readonly number[]): KvCache {
    const pick = (tensor: ort.Tensor): ort.Tensor => {
      const data = tensor.data as Float32Array;
      const rowSize = this.nHead * cache.length * this.headDim;
      const out = new Float32Array(rows.length * rowSize);
      rows.forEach((row, i) => {
        out.set(data.subarray(row * rowSize, (row + 1) * rowSize), i * rowSize);
      });
      return new ort.Tensor("float32", out, [rows.length, this.nHead, cache.length, this.headDim]);
    };
    return {
      batch: rows.length,
      length: cache.length,
      keys: cache.keys.map(pick),
      values: cache.values.map(pick),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}
