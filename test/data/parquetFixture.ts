/**
 * A minimal parquet writer for test fixtures, so the parquet reader is tested without Python,
 * without hyparquet-writer and without ../shared. It follows the parquet format spec
 * (https://github.com/apache/parquet-format): "PAR1", one uncompressed v1 data page per column
 * chunk with PLAIN values, RLE definition levels for OPTIONAL columns, and the FileMetaData
 * footer in the Thrift compact protocol. Only flat columns of UTF-8 strings and INT32.
 */

export type FixtureColumn =
  | { name: string; type: "string"; values: (string | null)[] }
  | { name: string; type: "int32"; values: (number | null)[] };

// Thrift compact protocol type ids.
const T_I32 = 5;
const T_I64 = 6;
const T_BINARY = 8;
const T_LIST = 9;
const T_STRUCT = 12;

type Field =
  | { id: number; type: "i32" | "i64"; value: number }
  | { id: number; type: "binary"; value: Uint8Array | string }
  | { id: number; type: "struct"; value: Field[] }
  | { id: number; type: "list"; elem: "i32" | "binary" | "struct"; value: unknown[] };

class Bytes {
  private parts: number[] = [];
  byte(b: number): void {
    this.parts.push(b & 0xff);
  }
  bytes(data: Uint8Array): void {
    for (const b of data) this.parts.push(b);
  }
  varint(n: bigint): void {
    let v = n;
    while (v >= 0x80n) {
      this.byte(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.byte(Number(v));
  }
  zigzag(n: number): void {
    const v = BigInt(n);
    this.varint(v >= 0n ? v << 1n : (-v << 1n) - 1n);
  }
  u32le(n: number): void {
    for (let i = 0; i < 4; i++) this.byte(n >>> (8 * i));
  }
  get length(): number {
    return this.parts.length;
  }
  toUint8Array(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const utf8 = (s: string) => new TextEncoder().encode(s);

function writeStruct(out: Bytes, fields: Field[]): void {
  let last = 0;
  for (const field of fields) {
    const typeId = { i32: T_I32, i64: T_I64, binary: T_BINARY, struct: T_STRUCT, list: T_LIST }[
      field.type
    ];
    const delta = field.id - last;
    if (delta > 0 && delta <= 15) out.byte((delta << 4) | typeId);
    else {
      out.byte(typeId);
      out.zigzag(field.id);
    }
    last = field.id;
    writeValue(out, field);
  }
  out.byte(0); // stop
}

function writeValue(out: Bytes, field: Field): void {
  switch (field.type) {
    case "i32":
    case "i64":
      out.zigzag(field.value);
      return;
    case "binary": {
      const data = typeof field.value === "string" ? utf8(field.value) : field.value;
      out.varint(BigInt(data.length));
      out.bytes(data);
      return;
    }
    case "struct":
      writeStruct(out, field.value);
      return;
    case "list": {
      const elemType = { i32: T_I32, binary: T_BINARY, struct: T_STRUCT }[field.elem];
      if (field.value.length < 15) out.byte((field.value.length << 4) | elemType);
      else {
        out.byte(0xf0 | elemType);
        out.varint(BigInt(field.value.length));
      }
      for (const item of field.value) {
        if (field.elem === "i32") out.zigzag(item as number);
        else if (field.elem === "binary") {
          const data = utf8(item as string);
          out.varint(BigInt(data.length));
          out.bytes(data);
        } else writeStruct(out, item as Field[]);
      }
      return;
    }
  }
}

/** RLE runs of definition levels (bit width 1), prefixed by their byte length (data page v1). */
function definitionLevels(values: unknown[]): Uint8Array {
  const runs = new Bytes();
  let i = 0;
  while (i < values.length) {
    const level = values[i] === null ? 0 : 1;
    let run = 1;
    while (i + run < values.length && (values[i + run] === null ? 0 : 1) === level) run++;
    runs.varint(BigInt(run << 1)); // RLE run header: count << 1, low bit 0
    runs.byte(level);
    i += run;
  }
  const out = new Bytes();
  out.u32le(runs.length);
  out.bytes(runs.toUint8Array());
  return out.toUint8Array();
}

function plainValues(column: FixtureColumn, values: unknown[]): Uint8Array {
  const out = new Bytes();
  for (const value of values) {
    if (value === null) continue;
    if (column.type === "string") {
      const data = utf8(value as string);
      out.u32le(data.length);
      out.bytes(data);
    } else out.u32le(value as number);
  }
  return out.toUint8Array();
}

/**
 * Parquet bytes for the given columns (all the same length), split into row groups of
 * `rowGroupSize` rows. Columns with a null anywhere are OPTIONAL, the rest REQUIRED.
 */
export function writeParquet(columns: FixtureColumn[], rowGroupSize = 1000): Uint8Array {
  const numRows = columns[0]?.values.length ?? 0;
  const optional = columns.map((column) => column.values.some((v) => v === null));
  const file = new Bytes();
  file.bytes(utf8("PAR1"));
  const rowGroups: Field[][] = [];
  for (let start = 0; start < numRows; start += rowGroupSize) {
    const end = Math.min(numRows, start + rowGroupSize);
    const chunks: Field[][] = [];
    let groupBytes = 0;
    columns.forEach((column, c) => {
      const values = column.values.slice(start, end);
      const levels = optional[c] ? definitionLevels(values) : new Uint8Array(0);
      const plain = plainValues(column, values);
      const page = new Uint8Array(levels.length + plain.length);
      page.set(levels, 0);
      page.set(plain, levels.length);
      const header = new Bytes();
      writeStruct(header, [
        { id: 1, type: "i32", value: 0 }, // DATA_PAGE
        { id: 2, type: "i32", value: page.length },
        { id: 3, type: "i32", value: page.length },
        {
          id: 5,
          type: "struct",
          value: [
            { id: 1, type: "i32", value: values.length },
            { id: 2, type: "i32", value: 0 }, // PLAIN
            { id: 3, type: "i32", value: 3 }, // RLE
            { id: 4, type: "i32", value: 3 }, // RLE
          ],
        },
      ]);
      const offset = file.length;
      file.bytes(header.toUint8Array());
      file.bytes(page);
      const size = header.length + page.length;
      groupBytes += size;
      chunks.push([
        { id: 2, type: "i64", value: offset },
        {
          id: 3,
          type: "struct",
          value: [
            { id: 1, type: "i32", value: column.type === "string" ? 6 : 1 }, // BYTE_ARRAY | INT32
            { id: 2, type: "list", elem: "i32", value: [0, 3] }, // PLAIN, RLE
            { id: 3, type: "list", elem: "binary", value: [column.name] },
            { id: 4, type: "i32", value: 0 }, // UNCOMPRESSED
            { id: 5, type: "i64", value: values.length },
            { id: 6, type: "i64", value: size },
            { id: 7, type: "i64", value: size },
            { id: 9, type: "i64", value: offset },
          ],
        },
      ]);
    });
    rowGroups.push([
      { id: 1, type: "list", elem: "struct", value: chunks },
      { id: 2, type: "i64", value: groupBytes },
      { id: 3, type: "i64", value: end - start },
    ]);
  }
  const schema: Field[][] = [
    [
      { id: 4, type: "binary", value: "schema" },
      { id: 5, type: "i32", value: columns.length },
    ],
    ...columns.map((column, c): Field[] => [
      { id: 1, type: "i32", value: column.type === "string" ? 6 : 1 },
      { id: 3, type: "i32", value: optional[c] ? 1 : 0 }, // OPTIONAL | REQUIRED
      { id: 4, type: "binary", value: column.name },
      ...(column.type === "string" ? [{ id: 6, type: "i32" as const, value: 0 }] : []), // UTF8
    ]),
  ];
  const footer = new Bytes();
  writeStruct(footer, [
    { id: 1, type: "i32", value: 1 },
    { id: 2, type: "list", elem: "struct", value: schema },
    { id: 3, type: "i64", value: numRows },
    { id: 4, type: "list", elem: "struct", value: rowGroups },
    { id: 6, type: "binary", value: "imagine-bot test fixture" },
  ]);
  file.bytes(footer.toUint8Array());
  file.u32le(footer.length);
  file.bytes(utf8("PAR1"));
  return file.toUint8Array();
}
