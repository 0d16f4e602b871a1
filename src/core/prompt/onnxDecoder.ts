/**
 * One loaded GPT-2 ONNX decoder with a KV cache. Input and output names follow Hugging Face's
 * ONNX exports (input_ids, attention_mask, position_ids, past_key_values.N.key|value →
 * logits, present.N.key|value; merged decoders add use_cache_branch), so a published export
 * loads as well as ours. Our own exports of models 768 wide or more (training/export_onnx.py
 * --kv-cache buffer, its default there) return new_key_values.N.key|value instead, this step's
 * keys and values only: the engine keeps the past in buffers with room to grow and writes each
 * step's entries into them, so no step copies the whole cache (onnxruntime-node copies every
 * output into JavaScript). The session is created once and shared: onnxruntime allows concurrent
 * run() calls on one session.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { BotError, UserError } from "../errors.js";
import { type ModelDirectory, readModelDirectory } from "./modelDir.js";

/**
 * Per layer: key and value, each [batch, nHead, capacity, headDim], float32, whose first `length`
 * positions are the cache. capacity is length for a graph that returns the whole cache
 * (present.N.*); a buffer graph's cache has room for the steps to come, masked out until written.
 * A cache is a value: stepping it again, or stepping a cache it came from, never changes it.
 */
export interface KvCache {
  batch: number;
  length: number;
  keys: ort.Tensor[];
  values: ort.Tensor[];
  /**
   * Buffer graphs: how many positions of these buffers some step has written, shared by every
   * cache on them. A step writes in place only at that end; a cache behind it is copied first.
   */
  readonly written?: { length: number };
}

/**
 * A buffer cache grows this many positions at a time: the attention reads the unused positions
 * too (masked), so a small step keeps that waste small, and each growth copies the cache once.
 * gpt2-xl int4, batch 5, 24 tokens after an 11-token prefix, two alternating rounds: 8 → 74.5–76.1
 * ms a step, 16 → 72.2–74.6, 32 → 76.6–81.5.
 */
const CACHE_GROWTH = 16;

/** Positions a cache holds room for per row: its tensors' third axis. */
const capacityOf = (cache: KvCache): number => (cache.keys[0]?.dims[2] as number | undefined) ?? 0;

export interface DecoderStep {
  /** Logits of each row's last position: rows × vocab, row-major. */
  lastLogits: Float32Array;
  vocab: number;
  cache: KvCache;
}

export interface DecoderOptions {
  /** onnxruntime intra-op threads; 0 = onnxruntime's default (every core). */
  threads?: number;
  /**
   * Let onnxruntime's intra-op threads spin-wait for work between kernels (onnxruntime's default).
   * Off here: on a CPU shared with other processes a spinning thread burns the time slices the
   * other thread of the same step needs, and decoding ran 2–3.5× slower at load 5–11 on 2 cores
   * (README, Performance).
   */
  spinning?: boolean;
  /** Write onnxruntime's per-kernel profile to `<profile>_<date>.json` (benchmarks only). */
  profile?: string;
}

export class Gpt2OnnxDecoder {
  readonly nLayer: number;
  readonly nHead: number;
  readonly headDim: number;
  private readonly hasPositionIds: boolean;
  private readonly hasCacheBranch: boolean;
  /** The graph returns this step's keys and values (new_key_values.N.*), not the whole cache. */
  readonly buffersCache: boolean;
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
    this.buffersCache = session.outputNames.includes("new_key_values.0.key");
  }

  static async load(dir: string, options: DecoderOptions = {}): Promise<Gpt2OnnxDecoder> {
    const model = readModelDirectory(dir);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(model.onnxPath, {
        graphOptimizationLevel: "all",
        executionMode: "sequential",
        ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
        extra: { session: { intra_op: { allow_spinning: options.spinning ? "1" : "0" } } },
        ...(options.profile ? { enableProfiling: true, profileFilePrefix: options.profile } : {}),
        logSeverityLevel: 3,
      });
    } catch (error) {
      const message = (error as Error).message;
      // Exports keep their weights beside the graph (model.onnx.data): a copy without it fails here.
      const hint = /external data/i.test(message)
        ? " The graph keeps its weights in the external-data file named above: copy it beside the .onnx file (training/export_onnx.py writes model.onnx.data), or pull the model again."
        : " Re-export it with training/export_onnx.py.";
      throw new UserError(
        "MODEL_DIR_INVALID",
        `${model.onnxPath} could not be loaded by onnxruntime: ${message}.${hint}`,
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
    const cacheOutput = this.buffersCache ? "new_key_values" : "present";
    for (let layer = 0; layer < this.nLayer; layer++) {
      for (const kind of ["key", "value"]) {
        if (!inputNames.includes(`past_key_values.${layer}.${kind}`)) {
          missing.push(`input past_key_values.${layer}.${kind}`);
        }
        if (!outputNames.includes(`${cacheOutput}.${layer}.${kind}`))
          missing.push(`output ${cacheOutput}.${layer}.${kind}`);
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
    const empty = () => this.cacheTensor(batch, 0);
    return {
      batch,
      length: 0,
      keys: Array.from({ length: this.nLayer }, empty),
      values: Array.from({ length: this.nLayer }, empty),
      ...(this.buffersCache ? { written: { length: 0 } } : {}),
    };
  }

  private cacheTensor(batch: number, capacity: number): ort.Tensor {
    const data = new Float32Array(batch * this.nHead * capacity * this.headDim);
    return new ort.Tensor("float32", data, [batch, this.nHead, capacity, this.headDim]);
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
    if (this.buffersCache && !cache.written) {
      throw new BotError(
        "GENERATION_FAILED",
        "a KV cache from a decoder whose graph returns the whole cache, stepped by one that returns each step's entries",
      );
    }
    const total = cache.length + seq;
    const capacity = capacityOf(cache);
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
      attention_mask: this.attentionMask(batch, cache.length, capacity, seq),
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
    const logitRows = logits.dims[1] as number;
    // Only the last position of each row is sampled from. One position per row (every decode
    // step, and a graph that computes only the last position) is that already: no copy.
    let lastLogits = data;
    if (logitRows !== 1) {
      lastLogits = new Float32Array(batch * vocab);
      for (let row = 0; row < batch; row++) {
        const offset = (row * logitRows + logitRows - 1) * vocab;
        lastLogits.set(data.subarray(offset, offset + vocab), row * vocab);
      }
    }
    if (this.buffersCache) return { lastLogits, vocab, cache: this.append(cache, outputs, seq) };
    const keys: ort.Tensor[] = [];
    const values: ort.Tensor[] = [];
    for (let layer = 0; layer < this.nLayer; layer++) {
      keys.push(outputs[`present.${layer}.key`] as ort.Tensor);
      values.push(outputs[`present.${layer}.value`] as ort.Tensor);
    }
    return { lastLogits, vocab, cache: { batch, length: total, keys, values } };
  }

  /**
   * [batch, capacity + seq]: the cached positions, then the unused room (0: masked), then this
   * step's. A whole-cache graph has no room (capacity = length): all ones.
   */
  private attentionMask(batch: number, length: number, capacity: number, seq: number): ort.Tensor {
    const width = capacity + seq;
    const mask = new BigInt64Array(batch * width).fill(1n);
    if (capacity > length) {
      for (let row = 0; row < batch; row++)
        mask.fill(0n, row * width + length, row * width + capacity);
    }
    return new ort.Tensor("int64", mask, [batch, width]);
  }

  /**
   * A buffer graph's step: this step's keys and values written after the cache's `length`
   * positions, in place when the buffers have room and nothing was written there yet, else into
   * new buffers (grown by CACHE_GROWTH) that the cache is copied into first.
   */
  private append(cache: KvCache, outputs: ort.InferenceSession.ReturnType, seq: number): KvCache {
    const written = cache.written as { length: number }; // step() checked it is there
    const length = cache.length + seq;
    const capacity = capacityOf(cache);
    let target = cache;
    if (length > capacity || written.length !== cache.length) {
      const grown = length > capacity ? Math.ceil(length / CACHE_GROWTH) * CACHE_GROWTH : capacity;
      target = this.copyCache(cache, [...Array(cache.batch).keys()], grown);
    }
    (target.written as { length: number }).length = length;
    for (let layer = 0; layer < this.nLayer; layer++) {
      this.writePositions(
        target.keys[layer] as ort.Tensor,
        outputs[`new_key_values.${layer}.key`] as ort.Tensor,
        cache.length,
        seq,
      );
      this.writePositions(
        target.values[layer] as ort.Tensor,
        outputs[`new_key_values.${layer}.value`] as ort.Tensor,
        cache.length,
        seq,
      );
    }
    return { ...target, length };
  }

  /** fresh [batch, nHead, seq, headDim] → buffer positions from..from+seq of each row and head. */
  private writePositions(buffer: ort.Tensor, fresh: ort.Tensor, from: number, seq: number): void {
    const target = buffer.data as Float32Array;
    const source = fresh.data as Float32Array;
    const capacity = buffer.dims[2] as number;
    const block = seq * this.headDim; // one row and head of this step
    const heads = (buffer.dims[0] as number) * this.nHead;
    for (let head = 0; head < heads; head++) {
      const into = (head * capacity + from) * this.headDim;
      const at = head * block;
      // A plain loop: ~10^4 blocks of 64 floats a step at gpt2-xl batch 5, where subarray + set
      // would allocate a view for each.
      for (let i = 0; i < block; i++) target[into + i] = source[at + i] as number;
    }
  }

  /** Rows `rows` of the cache's first `length` positions, into new buffers of `capacity`. */
  private copyCache(cache: KvCache, rows: readonly number[], capacity: number): KvCache {
    const from = capacityOf(cache);
    const span = cache.length * this.headDim;
    const copy = (tensor: ort.Tensor): ort.Tensor => {
      const source = tensor.data as Float32Array;
      const out = this.cacheTensor(rows.length, capacity);
      const target = out.data as Float32Array;
      rows.forEach((row, i) => {
        for (let head = 0; head < this.nHead; head++) {
          const at = (row * this.nHead + head) * from * this.headDim;
          target.set(
            source.subarray(at, at + span),
            (i * this.nHead + head) * capacity * this.headDim,
          );
        }
      });
      return out;
    };
    return {
      batch: rows.length,
      length: cache.length,
      keys: cache.keys.map(copy),
      values: cache.values.map(copy),
      ...(this.buffersCache ? { written: { length: cache.length } } : {}),
    };
  }

  /**
   * A cache whose rows are `rows` of the given one, in that order: repeats a one-row prefix for
   * a batch, and drops rows that have finished so later steps compute only live rows.
   */
  selectRows(cache: KvCache, rows: readonly number[]): KvCache {
    // A buffer cache keeps room for the next step, so it does not grow again at once.
    const capacity = this.buffersCache
      ? Math.ceil((cache.length + 1) / CACHE_GROWTH) * CACHE_GROWTH
      : cache.length;
    return this.copyCache(cache, rows, capacity);
  }

  /** Finishes the profile file of a decoder loaded with `profile`. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}

// ---------------------------------------------------------------------------- merged exports

/**
 * Writes an unmerged copy of a Hugging Face "merged" decoder (decoder_model_merged.onnx, whose If
 * on use_cache_branch picks a with-past or a no-past copy of the decoder). onnxruntime prepacks
 * the weights once per branch, which costs ~560 MB more resident memory than a plain export of
 * GPT-2 small; the with-past branch alone also runs the first step (an empty past concatenates
 * to nothing). The copy inlines that branch into the main graph, maps its outputs to the If's
 * with Identity nodes, and drops the If and the use_cache_branch input. Everything else is copied
 * byte for byte, so weights stored as external data keep their file names (write `target`
 * beside `source`). Returns false, writing nothing, when `source` has no such If.
 *
 * With `externalData`, weights stored inside the graph (raw_data of EXTERNAL_DATA_THRESHOLD bytes
 * or more) move to that file, beside `target`, as ONNX external data: onnxruntime maps it instead
 * of keeping the protobuf's copy of every weight beside the copy it prepacks (training/README.md).
 */
export function unmergeOnnxDecoder(
  source: string,
  target: string,
  options: { externalData?: string } = {},
): boolean {
  const fd = openSync(source, "r");
  let data: ExternalDataWriter | undefined;
  try {
    const file = new ProtoFile(fd);
    const model = file.fields(0, file.size);
    const graphField = model.find((f) => f.number === 7 && f.wireType === 2);
    if (!graphField) throw new Error(`${source} has no ONNX graph`);
    const graph = file.fields(graphField.start, graphField.end);
    let ifField: ProtoField | undefined;
    let ifOutputs: string[] = [];
    let branch: ProtoField | undefined;
    for (const f of graph) {
      if (f.number !== 1) continue;
      const node = file.fields(f.start, f.end);
      const op = node.find((n) => n.number === 4);
      const inputs = node.filter((n) => n.number === 1).map((n) => file.text(n));
      if (!op || file.text(op) !== "If" || inputs[0] !== "use_cache_branch") continue;
      if (ifField) throw new Error(`${source} has more than one If on use_cache_branch`);
      ifField = f;
      ifOutputs = node.filter((n) => n.number === 2).map((n) => file.text(n));
      for (const attribute of node.filter((n) => n.number === 5)) {
        const parts = file.fields(attribute.start, attribute.end);
        const name = parts.find((p) => p.number === 1);
        if (name && file.text(name) === "then_branch") branch = parts.find((p) => p.number === 6);
      }
    }
    if (!ifField) return false;
    if (!branch) throw new Error(`${source}: the If on use_cache_branch has no then_branch`);
    const branchFields = file.fields(branch.start, branch.end);
    const branchOutputs = branchFields
      .filter((f) => f.number === 12)
      .map((f) => file.text(file.fields(f.start, f.end).find((p) => p.number === 1) as ProtoField));
    if (branchOutputs.length !== ifOutputs.length) {
      throw new Error(
        `${source}: the with-past branch has ${branchOutputs.length} outputs, the If ${ifOutputs.length}`,
      );
    }

    // The new graph: every field as it was, except the If (→ the branch's nodes + Identity
    // nodes) and the use_cache_branch input; the branch's own initializers appended; with
    // externalData, every large initializer rewritten to point into that file.
    if (options.externalData !== undefined) {
      data = new ExternalDataWriter(
        join(dirname(target), options.externalData),
        options.externalData,
      );
    }
    const initializer = (f: ProtoField): Piece => (data ? data.externalize(file, f) : f);
    const pieces: Piece[] = [];
    for (const f of graph) {
      if (f === ifField) {
        for (const n of branchFields.filter((b) => b.number === 1)) pieces.push(n);
        branchOutputs.forEach((inner, i) => {
          pieces.push(identityNode(inner, ifOutputs[i] as string));
        });
        continue;
      }
      if (f.number === 11) {
        const name = file.fields(f.start, f.end).find((p) => p.number === 1);
        if (name && file.text(name) === "use_cache_branch") continue;
      }
      pieces.push(f.number === 5 && f.wireType === 2 ? initializer(f) : f);
    }
    for (const n of branchFields.filter((b) => b.number === 5)) pieces.push(initializer(n));

    const graphLength = pieces.reduce((sum, p) => sum + pieceLength(p), 0);
    const out = openSync(target, "w");
    try {
      for (const f of model) {
        if (f === graphField) {
          writeSync(out, Buffer.concat([varint(7 * 8 + 2), varint(graphLength)]));
          for (const p of pieces) writePiece(file, out, p);
        } else {
          writePiece(file, out, f);
        }
      }
    } finally {
      closeSync(out);
    }
    return true;
  } finally {
    data?.close();
    closeSync(fd);
  }
}

/** Initializers smaller than this stay inside the graph (as export_onnx.py's threshold). */
export const EXTERNAL_DATA_THRESHOLD = 1024;
/** Each tensor starts on a page boundary in the data file, so onnxruntime can map it in place. */
const EXTERNAL_DATA_ALIGNMENT = 4096;

/** Appends tensors' raw bytes to an external-data file and rewrites their TensorProto. */
class ExternalDataWriter {
  private readonly fd: number;
  private position = 0;

  constructor(
    path: string,
    private readonly location: string,
  ) {
    this.fd = openSync(path, "w");
  }

  /**
   * A GraphProto.initializer field whose TensorProto keeps its raw_data (field 9) inside: the
   * same tensor with the bytes moved here, external_data (13) naming location/offset/length and
   * data_location (14) EXTERNAL. Anything else is returned as it was.
   */
  externalize(file: ProtoFile, field: ProtoField): Piece {
    const parts = file.fields(field.start, field.end);
    const raw = parts.find((p) => p.number === 9 && p.wireType === 2);
    if (
      !raw ||
      raw.end - raw.start < EXTERNAL_DATA_THRESHOLD ||
      parts.some((p) => p.number === 14)
    ) {
      return field;
    }
    const length = raw.end - raw.start;
    const offset = Math.ceil(this.position / EXTERNAL_DATA_ALIGNMENT) * EXTERNAL_DATA_ALIGNMENT;
    if (offset > this.position) writeSync(this.fd, Buffer.alloc(offset - this.position));
    writePiece(file, this.fd, { ...raw, keyStart: raw.start });
    this.position = offset + length;
    const kept = parts
      .filter((p) => p !== raw)
      .map((p) => {
        const bytes = Buffer.alloc(p.end - p.keyStart);
        readSync(file.fd, bytes, 0, bytes.length, p.keyStart);
        return bytes;
      });
    const entry = (key: string, value: string) => {
      const body = Buffer.concat([stringField(1, key), stringField(2, value)]);
      return Buffer.concat([varint(13 * 8 + 2), varint(body.length), body]);
    };
    const tensor = Buffer.concat([
      ...kept,
      entry("location", this.location),
      entry("offset", String(offset)),
      entry("length", String(length)),
      varint(14 * 8), // data_location, varint
      varint(1), // EXTERNAL
    ]);
    return Buffer.concat([varint(5 * 8 + 2), varint(tensor.length), tensor]);
  }

  close(): void {
    closeSync(this.fd);
  }
}

interface ProtoField {
  number: number;
  wireType: number;
  /** The whole field, key included: what a byte-for-byte copy writes. */
  keyStart: number;
  /** Payload of a length-delimited field; for other wire types start === end. */
  start: number;
  end: number;
}

/** A field copied from the source file, or bytes made here. */
type Piece = ProtoField | Buffer;

const pieceLength = (p: Piece): number => (Buffer.isBuffer(p) ? p.length : p.end - p.keyStart);

function writePiece(file: ProtoFile, out: number, p: Piece): void {
  if (Buffer.isBuffer(p)) {
    writeSync(out, p);
    return;
  }
  const chunk = Buffer.allocUnsafe(Math.min(1 << 24, p.end - p.keyStart));
  for (let pos = p.keyStart; pos < p.end; ) {
    const read = readSync(file.fd, chunk, 0, Math.min(chunk.length, p.end - pos), pos);
    if (read === 0) throw new Error("unexpected end of the ONNX file");
    writeSync(out, chunk, 0, read);
    pos += read;
  }
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function stringField(number: number, text: string): Buffer {
  const data = Buffer.from(text, "utf8");
  return Buffer.concat([varint(number * 8 + 2), varint(data.length), data]);
}

/** GraphProto.node (field 1) holding NodeProto { input, output, name, op_type: "Identity" }. */
function identityNode(input: string, output: string): Buffer {
  const node = Buffer.concat([
    stringField(1, input),
    stringField(2, output),
    stringField(3, `unmerged/${output}`),
    stringField(4, "Identity"),
  ]);
  return Buffer.concat([varint(1 * 8 + 2), varint(node.length), node]);
}

/** Reads protobuf fields at positions of an open file, through a small window. */
class ProtoFile {
  readonly size: number;
  private window = Buffer.alloc(1 << 16);
  private windowStart = 0;
  private windowEnd = 0;

  constructor(readonly fd: number) {
    this.size = fstatSync(fd).size;
  }

  private byte(pos: number): number {
    if (pos < this.windowStart || pos >= this.windowEnd) {
      this.windowEnd = pos + readSync(this.fd, this.window, 0, this.window.length, pos);
      this.windowStart = pos;
    }
    return this.window[pos - this.windowStart] as number;
  }

  text(field: ProtoField): string {
    const data = Buffer.alloc(field.end - field.start);
    readSync(this.fd, data, 0, data.length, field.start);
    return data.toString("utf8");
  }

  fields(start: number, end: number): ProtoField[] {
    const out: ProtoField[] = [];
    let pos = start;
    const read = (): number => {
      let result = 0;
      let scale = 1;
      for (;;) {
        if (pos >= end) throw new Error(`truncated protobuf at byte ${pos}: not an ONNX file`);
        const b = this.byte(pos++);
        result += (b & 0x7f) * scale;
        if (b < 0x80) return result;
        scale *= 128;
      }
    };
    while (pos < end) {
      const keyStart = pos;
      const key = read();
      const wireType = key % 8;
      const number = Math.floor(key / 8);
      let payloadStart = pos;
      if (wireType === 0) read();
      else if (wireType === 1) pos += 8;
      else if (wireType === 5) pos += 4;
      else if (wireType === 2) {
        const length = read();
        payloadStart = pos;
        pos += length;
      } else
        throw new Error(`protobuf wire type ${wireType} at byte ${keyStart}: not an ONNX file`);
      if (pos > end) throw new Error(`protobuf field ${number} runs past its message`);
      out.push({
        number,
        wireType,
        keyStart,
        start: wireType === 2 ? payloadStart : pos,
        end: pos,
      });
    }
    return out;
  }
}
