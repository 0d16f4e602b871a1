/**
 * The bytes of weights one decode step streams from memory, read from the ONNX graph itself.
 *
 * Dividing by the file size overcounts: a Hugging Face-style export stores lm_head as its own
 * transposed copy while the token embedding is only indexed by a Gather (a few rows per step), and
 * files can hold unused initializers. Here an initializer counts when some node other than a
 * Gather (or GatherBlockQuantized, a quantized embedding's) consumes it (directly or through a
 * weight-only Transpose/Cast/Reshape/Identity, which onnxruntime folds into a weight of the same
 * size), in the main graph or any subgraph (the If
 * branches of a merged decoder share the outer initializers, so each is counted once).
 *
 * The file is scanned with a minimal protobuf reader over a file descriptor: tensor data is
 * skipped, never read, so a multi-gigabyte model costs a few megabytes of reads.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** Read a few rows a step, not streamed whole. */
const GATHERS = new Set(["Gather", "GatherBlockQuantized"]);

/** Bytes per element of ONNX TensorProto.DataType; 4-bit types are handled as half a byte. */
const ELEMENT_BYTES: Record<number, number> = {
  1: 4, // FLOAT
  2: 1, // UINT8
  3: 1, // INT8
  4: 2, // UINT16
  5: 2, // INT16
  6: 4, // INT32
  7: 8, // INT64
  9: 1, // BOOL
  10: 2, // FLOAT16
  11: 8, // DOUBLE
  12: 4, // UINT32
  13: 8, // UINT64
  16: 2, // BFLOAT16
  17: 1, // FLOAT8E4M3FN
  18: 1,
  19: 1,
  20: 1,
  21: 0.5, // UINT4
  22: 0.5, // INT4
};

/** Ops that only reshape or re-type a weight; onnxruntime constant-folds them at load. */
const PASS_THROUGH = new Set(["Transpose", "Cast", "Reshape", "Identity", "Squeeze", "Unsqueeze"]);

export interface GraphNode {
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
}

export interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  bytes: number;
}

export interface OnnxGraphSummary {
  /** Every node, subgraphs included. */
  nodes: GraphNode[];
  initializers: Map<string, Initializer>;
  /** Initializers read in full by each decode step. */
  streamed: Initializer[];
  streamedBytes: number;
  /** All initializer bytes (what the file mostly is). */
  initializerBytes: number;
}

/** Positional reads through a 1 MiB window: the scanner jumps over tensor data. */
class FileReader {
  private window = Buffer.alloc(1 << 20);
  private windowStart = 0;
  private windowEnd = 0;
  readonly size: number;

  constructor(private readonly fd: number) {
    this.size = fstatSync(fd).size;
  }

  byte(pos: number): number {
    if (pos < this.windowStart || pos >= this.windowEnd) this.fill(pos);
    return this.window[pos - this.windowStart] as number;
  }

  bytes(pos: number, length: number): Buffer {
    if (length > this.window.length) {
      const out = Buffer.alloc(length);
      readSync(this.fd, out, 0, length, pos);
      return out;
    }
    if (pos < this.windowStart || pos + length > this.windowEnd) this.fill(pos);
    return this.window.subarray(pos - this.windowStart, pos - this.windowStart + length);
  }

  private fill(pos: number): void {
    const read = readSync(this.fd, this.window, 0, this.window.length, pos);
    this.windowStart = pos;
    this.windowEnd = pos + read;
  }
}

interface Field {
  number: number;
  wireType: number;
  /** varint / fixed value (as a number; ONNX varints used here fit in 2^53). */
  value: number;
  /** start and end of a length-delimited payload. */
  start: number;
  end: number;
}

function* fields(reader: FileReader, start: number, end: number): Generator<Field> {
  let pos = start;
  const varint = (): number => {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (pos >= end) throw new Error(`truncated protobuf varint at byte ${pos}`);
      const b = reader.byte(pos++);
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
  };
  while (pos < end) {
    const key = varint();
    const number = Math.floor(key / 8);
    const wireType = key & 7;
    if (wireType === 0) {
      yield { number, wireType, value: varint(), start: pos, end: pos };
    } else if (wireType === 2) {
      const length = varint();
      const payloadStart = pos;
      pos += length;
      if (pos > end) throw new Error(`protobuf field ${number} runs past its message`);
      yield { number, wireType, value: length, start: payloadStart, end: pos };
    } else if (wireType === 1) {
      pos += 8;
      yield { number, wireType, value: 0, start: pos - 8, end: pos };
    } else if (wireType === 5) {
      pos += 4;
      yield { number, wireType, value: 0, start: pos - 4, end: pos };
    } else {
      throw new Error(
        `unsupported protobuf wire type ${wireType} at byte ${pos}: not an ONNX file`,
      );
    }
  }
}

function text(reader: FileReader, field: Field): string {
  return reader.bytes(field.start, field.end - field.start).toString("utf8");
}

/** Packed or unpacked repeated int64 (TensorProto.dims). */
function int64s(reader: FileReader, field: Field, out: number[]): void {
  if (field.wireType === 0) {
    out.push(field.value);
    return;
  }
  let pos = field.start;
  while (pos < field.end) {
    let result = 0;
    let scale = 1;
    for (;;) {
      const b = reader.byte(pos++);
      result += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 128;
    }
    out.push(result);
  }
}

function readTensor(reader: FileReader, start: number, end: number): Initializer {
  const dims: number[] = [];
  let dataType = 0;
  let name = "";
  for (const f of fields(reader, start, end)) {
    if (f.number === 1) int64s(reader, f, dims);
    else if (f.number === 2) dataType = f.value;
    else if (f.number === 8) name = text(reader, f);
  }
  const perElement = ELEMENT_BYTES[dataType];
  if (perElement === undefined) {
    throw new Error(
      `initializer ${name} has ONNX data type ${dataType}, which this scanner does not size`,
    );
  }
  const count = dims.reduce((product, d) => product * d, 1);
  return { name, dims, dataType, bytes: Math.ceil(count * perElement) };
}

function readNode(
  reader: FileReader,
  start: number,
  end: number,
  nodes: GraphNode[],
  initializers: Map<string, Initializer>,
): void {
  const node: GraphNode = { opType: "", domain: "", inputs: [], outputs: [] };
  for (const f of fields(reader, start, end)) {
    if (f.number === 1) node.inputs.push(text(reader, f));
    else if (f.number === 2) node.outputs.push(text(reader, f));
    else if (f.number === 4) node.opType = text(reader, f);
    else if (f.number === 7) node.domain = text(reader, f);
    else if (f.number === 5) {
      // AttributeProto: g = 6 (one subgraph, e.g. If branches), graphs = 11.
      for (const a of fields(reader, f.start, f.end)) {
        if (a.number === 6 || a.number === 11)
          readGraph(reader, a.start, a.end, nodes, initializers);
      }
    }
  }
  nodes.push(node);
}

function readGraph(
  reader: FileReader,
  start: number,
  end: number,
  nodes: GraphNode[],
  initializers: Map<string, Initializer>,
): void {
  for (const f of fields(reader, start, end)) {
    if (f.number === 1) readNode(reader, f.start, f.end, nodes, initializers);
    else if (f.number === 5) {
      const tensor = readTensor(reader, f.start, f.end);
      initializers.set(tensor.name, tensor);
    }
  }
}

/** Scans `path` (a single-file or external-data ONNX model) and sizes what each step streams. */
export function summarizeOnnxGraph(path: string): OnnxGraphSummary {
  const fd = openSync(path, "r");
  const nodes: GraphNode[] = [];
  const initializers = new Map<string, Initializer>();
  try {
    const reader = new FileReader(fd);
    let sawGraph = false;
    for (const f of fields(reader, 0, reader.size)) {
      if (f.number === 7 && f.wireType === 2) {
        readGraph(reader, f.start, f.end, nodes, initializers);
        sawGraph = true;
      }
    }
    if (!sawGraph) throw new Error(`${path} has no ONNX graph`);
  } finally {
    closeSync(fd);
  }

  // Values derived from weights alone (a folded transpose of an initializer is still that weight).
  const weightRoots = new Map<string, Set<string>>();
  for (const name of initializers.keys()) weightRoots.set(name, new Set([name]));
  let changed = true;
  while (changed) {
    changed = false;
    for (const node of nodes) {
      if (!PASS_THROUGH.has(node.opType) || node.outputs.some((o) => weightRoots.has(o))) continue;
      const data = node.inputs[0];
      if (data === undefined || !weightRoots.has(data)) continue;
      // Shape inputs of Reshape/Unsqueeze are tiny initializers too; the data input is the weight.
      const roots = weightRoots.get(data) as Set<string>;
      for (const output of node.outputs) weightRoots.set(output, roots);
      changed = true;
    }
  }
  const streamedNames = new Set<string>();
  for (const node of nodes) {
    if (GATHERS.has(node.opType) || PASS_THROUGH.has(node.opType)) continue;
    for (const input of node.inputs) {
      for (const root of weightRoots.get(input) ?? []) streamedNames.add(root);
    }
  }
  const streamed = [...streamedNames].map((name) => initializers.get(name) as Initializer);
  const sum = (list: Iterable<Initializer>) => {
    let total = 0;
    for (const t of list) total += t.bytes;
    return total;
  };
  return {
    nodes,
    initializers,
    streamed,
    streamedBytes: sum(streamed),
    initializerBytes: sum(initializers.values()),
  };
}
