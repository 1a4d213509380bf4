/**
 * A minimal protobuf encoder for ONNX `ModelProto`, enough to hand graphs that evictbench builds
 * at run time to onnxruntime. Only encoding is supported; field numbers follow `onnx.proto3`.
 *
 * Encoding runs in two passes: the first computes the exact byte size of every message, the
 * second writes into one `Uint8Array` of that size. Initializer payloads are copied once each
 * with `Uint8Array.prototype.set`, so a graph holding 130 MB of weights costs one 130 MB
 * allocation and one copy of each weight.
 *
 * @example
 * ```ts
 * import { encodeModel } from "./proto.ts";
 *
 * const bytes = encodeModel({
 *   name: "add_one",
 *   nodes: [{ opType: "Add", inputs: ["x", "one"], outputs: ["y"] }],
 *   inputs: [{ name: "x", dataType: "float32", shape: ["N"] }],
 *   outputs: [{ name: "y", dataType: "float32", shape: ["N"] }],
 *   initializers: [{ name: "one", dataType: "float32", dims: [], data: new Float32Array([1]) }],
 * });
 * ```
 *
 * @module
 */

import { InputError } from "../../errors.ts";

/** Element types evictbench puts in ONNX tensors. */
export type DataType = "float32" | "float16" | "int64" | "int32" | "bool" | "uint8";

/**
 * Typed-array storage of tensor elements: float32 → `Float32Array`, float16 → `Uint16Array`
 * (IEEE half bit patterns), int64 → `BigInt64Array`, int32 → `Int32Array`, bool and uint8 →
 * `Uint8Array` (bool elements are 0 or 1).
 */
export type TensorElements = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

/** A constant tensor (initializer or tensor attribute), written as little-endian `raw_data`. */
export interface TensorData {
  /** Tensor name; the graph value name for an initializer. */
  name: string;
  /** Element type. */
  dataType: DataType;
  /** Shape; `[]` is a scalar. The element count of `data` must equal the product. */
  dims: number[];
  /** Elements in row-major order, in the typed array that matches `dataType`. */
  data: TensorElements;
}

/** A node attribute value, tagged by its ONNX attribute type. */
export type AttributeValue =
  | { int: number }
  | { float: number }
  | { string: string }
  | { ints: number[] }
  | { floats: number[] }
  | { tensor: TensorData };

/** One graph node. */
export interface NodeSpec {
  /** Operator name, e.g. "Gemm". */
  opType: string;
  /** Input value names; "" marks an omitted optional input. */
  inputs: string[];
  /** Output value names. */
  outputs: string[];
  /** Node name (optional but useful in ORT error messages). */
  name?: string;
  /** Operator domain; "" (the default) is the standard ONNX domain. */
  domain?: string;
  /** Attributes by name. */
  attributes?: Record<string, AttributeValue>;
}

/** A typed graph input or output. A string dimension is symbolic (`dim_param`). */
export interface ValueInfo {
  /** Value name. */
  name: string;
  /** Element type. */
  dataType: DataType;
  /** Dimensions: a number is fixed, a string is a named symbolic dimension. */
  shape: (number | string)[];
}

/** A whole graph. */
export interface GraphSpec {
  /** Graph name. */
  name: string;
  /** Nodes in topological order. */
  nodes: NodeSpec[];
  /** Graph inputs (initializers need not be listed). */
  inputs: ValueInfo[];
  /** Graph outputs. */
  outputs: ValueInfo[];
  /** Constant tensors. */
  initializers: TensorData[];
}

/** An operator set the model imports besides the standard one. */
export interface OpsetImport {
  /** Operator domain, e.g. "com.microsoft". */
  domain: string;
  /** Opset version in that domain. */
  version: number;
}

/** Options for {@linkcode encodeModel}. */
export interface EncodeModelOptions {
  /** Standard ONNX opset version; default 17. */
  opsetVersion?: number;
  /** ONNX IR version; default 8. */
  irVersion?: number;
  /** `producer_name`; default "evictbench". */
  producerName?: string;
  /** More opset imports, e.g. `{ domain: "com.microsoft", version: 1 }`. */
  extraOpsets?: OpsetImport[];
}

/** ONNX `TensorProto.DataType` code of each supported element type. */
export const DATA_TYPE_CODES: Readonly<Record<DataType, number>> = {
  float32: 1,
  uint8: 2,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
};

// Wire types.
const VARINT = 0;
const FIXED32 = 5;
const LEN = 2;

// ModelProto
const MODEL_IR_VERSION = 1;
const MODEL_PRODUCER_NAME = 2;
const MODEL_GRAPH = 7;
const MODEL_OPSET_IMPORT = 8;
// OperatorSetIdProto
const OPSET_DOMAIN = 1;
const OPSET_VERSION = 2;
// GraphProto
const GRAPH_NODE = 1;
const GRAPH_NAME = 2;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
// NodeProto
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_NAME = 3;
const NODE_OP_TYPE = 4;
const NODE_ATTRIBUTE = 5;
const NODE_DOMAIN = 7;
// AttributeProto
const ATTR_NAME = 1;
const ATTR_F = 2;
const ATTR_I = 3;
const ATTR_S = 4;
const ATTR_T = 5;
const ATTR_FLOATS = 7;
const ATTR_INTS = 8;
const ATTR_TYPE = 20;
// AttributeProto.AttributeType
const ATTR_TYPE_FLOAT = 1;
const ATTR_TYPE_INT = 2;
const ATTR_TYPE_STRING = 3;
const ATTR_TYPE_TENSOR = 4;
const ATTR_TYPE_FLOATS = 6;
const ATTR_TYPE_INTS = 7;
// TensorProto
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
// ValueInfoProto
const VALUE_INFO_NAME = 1;
const VALUE_INFO_TYPE = 2;
// TypeProto
const TYPE_TENSOR_TYPE = 1;
// TypeProto.Tensor
const TENSOR_TYPE_ELEM_TYPE = 1;
const TENSOR_TYPE_SHAPE = 2;
// TensorShapeProto
const SHAPE_DIM = 1;
// TensorShapeProto.Dimension
const DIM_VALUE = 1;
const DIM_PARAM = 2;

const TWO_POW_32 = 4294967296;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Encode a graph as a serialized ONNX `ModelProto`.
 *
 * Throws {@linkcode InputError} for malformed specs (a tensor whose element count does not match
 * its dims, a typed array that does not match its data type, a non-integer dimension, …).
 *
 * @example
 * ```ts
 * const bytes = encodeModel(graph, { opsetVersion: 17 });
 * const session = await createSession(bytes, { name: graph.name });
 * ```
 */
export function encodeModel(graph: GraphSpec, options: EncodeModelOptions = {}): Uint8Array {
  if (!LITTLE_ENDIAN_HOST) {
    throw new Error(
      "encodeModel: raw_data is written from typed arrays and needs a little-endian host",
    );
  }
  const opsetVersion = options.opsetVersion ?? 17;
  const irVersion = options.irVersion ?? 8;
  const producerName = options.producerName ?? "evictbench";
  const opsets: OpsetImport[] = [
    { domain: "", version: opsetVersion },
    ...(options.extraOpsets ?? []),
  ];
  validateGraph(graph);
  for (const opset of opsets) checkInt(opset.version, `opset version of domain "${opset.domain}"`);
  checkInt(irVersion, "irVersion");

  const graphBytes = graphSize(graph);
  let total = varintFieldSize(MODEL_IR_VERSION, irVersion) +
    stringFieldSize(MODEL_PRODUCER_NAME, producerName) + lenFieldSize(MODEL_GRAPH, graphBytes);
  for (const opset of opsets) total += lenFieldSize(MODEL_OPSET_IMPORT, opsetSize(opset));
  if (total > 0x7fffffff) {
    throw new InputError(
      `graph "${graph.name}": encoded model is ${total} bytes, over protobuf's 2 GiB limit`,
    );
  }

  const w = new Writer(total);
  w.varintField(MODEL_IR_VERSION, irVersion);
  w.stringField(MODEL_PRODUCER_NAME, producerName);
  w.message(MODEL_GRAPH, graphBytes, () => writeGraph(w, graph));
  for (const opset of opsets) {
    w.message(MODEL_OPSET_IMPORT, opsetSize(opset), () => {
      w.stringField(OPSET_DOMAIN, opset.domain);
      w.varintField(OPSET_VERSION, opset.version);
    });
  }
  if (w.pos !== total) throw new Error(`encodeModel: wrote ${w.pos} bytes, sized ${total}`);
  return w.buf;
}

/**
 * Number of bytes of the protobuf varint encoding of `value`, an integer in the safe range.
 * Negative values take 10 bytes (64-bit two's complement), as protobuf encodes int64.
 *
 * @example
 * ```ts
 * varintSize(300); // 2
 * varintSize(-1); // 10
 * ```
 */
export function varintSize(value: number): number {
  if (value < 0) return 10;
  let n = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

/**
 * The protobuf varint encoding of `value` (an int64 in the safe integer range) as bytes.
 * Used by tests and debugging; the encoder writes varints in place.
 *
 * @example
 * ```ts
 * encodeVarint(300); // Uint8Array [0xac, 0x02]
 * ```
 */
export function encodeVarint(value: number): Uint8Array {
  checkInt(value, "varint");
  const w = new Writer(varintSize(value));
  w.varint(value);
  return w.buf;
}

/** Byte sink of known final size. */
class Writer {
  readonly buf: Uint8Array;
  readonly view: DataView;
  pos = 0;
  readonly #text = new TextEncoder();

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  varint(value: number): void {
    const buf = this.buf;
    if (value < 0) {
      // 64-bit two's complement split into 32-bit halves; `>>>` reduces modulo 2^32.
      let lo = value >>> 0;
      let hi = Math.floor(value / TWO_POW_32) >>> 0;
      for (let i = 0; i < 9; i++) {
        buf[this.pos++] = (lo & 0x7f) | 0x80;
        lo = ((lo >>> 7) | (hi << 25)) >>> 0;
        hi >>>= 7;
      }
      buf[this.pos++] = lo & 0x01;
      return;
    }
    while (value >= 128) {
      buf[this.pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    buf[this.pos++] = value;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  varintField(field: number, value: number): void {
    this.tag(field, VARINT);
    this.varint(value);
  }

  float32Field(field: number, value: number): void {
    this.tag(field, FIXED32);
    this.view.setFloat32(this.pos, value, true);
    this.pos += 4;
  }

  stringField(field: number, value: string): void {
    this.tag(field, LEN);
    this.varint(utf8Length(value));
    const { written } = this.#text.encodeInto(value, this.buf.subarray(this.pos));
    this.pos += written;
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, LEN);
    this.varint(bytes.byteLength);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.byteLength;
  }

  /** Length-delimited submessage of precomputed `size`; `body` writes its fields. */
  message(field: number, size: number, body: () => void): void {
    this.tag(field, LEN);
    this.varint(size);
    const end = this.pos + size;
    body();
    if (this.pos !== end) {
      throw new Error(`proto: field ${field} sized ${size}, wrote ${size + this.pos - end}`);
    }
  }

  packedVarints(field: number, values: readonly number[]): void {
    this.tag(field, LEN);
    this.varint(packedVarintsBodySize(values));
    for (const v of values) this.varint(v);
  }

  packedFloats(field: number, values: readonly number[]): void {
    this.tag(field, LEN);
    this.varint(values.length * 4);
    for (const v of values) {
      this.view.setFloat32(this.pos, v, true);
      this.pos += 4;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sizes

function tagSize(field: number): number {
  return varintSize(field * 8);
}

function varintFieldSize(field: number, value: number): number {
  return tagSize(field) + varintSize(value);
}

function lenFieldSize(field: number, length: number): number {
  return tagSize(field) + varintSize(length) + length;
}

function stringFieldSize(field: number, value: string): number {
  return lenFieldSize(field, utf8Length(value));
}

function packedVarintsBodySize(values: readonly number[]): number {
  let n = 0;
  for (const v of values) n += varintSize(v);
  return n;
}

/** UTF-8 byte length of a JS string, counting lone surrogates as U+FFFD (3 bytes). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function opsetSize(opset: OpsetImport): number {
  return stringFieldSize(OPSET_DOMAIN, opset.domain) +
    varintFieldSize(OPSET_VERSION, opset.version);
}

function tensorSize(t: TensorData): number {
  let n = 0;
  if (t.dims.length > 0) n += lenFieldSize(TENSOR_DIMS, packedVarintsBodySize(t.dims));
  n += varintFieldSize(TENSOR_DATA_TYPE, DATA_TYPE_CODES[t.dataType]);
  n += stringFieldSize(TENSOR_NAME, t.name);
  n += lenFieldSize(TENSOR_RAW_DATA, t.data.byteLength);
  return n;
}

function attributeSize(name: string, a: AttributeValue): number {
  let n = stringFieldSize(ATTR_NAME, name) + varintFieldSize(ATTR_TYPE, attributeType(a));
  if ("int" in a) n += varintFieldSize(ATTR_I, a.int);
  else if ("float" in a) n += tagSize(ATTR_F) + 4;
  else if ("string" in a) n += stringFieldSize(ATTR_S, a.string);
  else if ("ints" in a) n += lenFieldSize(ATTR_INTS, packedVarintsBodySize(a.ints));
  else if ("floats" in a) n += lenFieldSize(ATTR_FLOATS, a.floats.length * 4);
  else n += lenFieldSize(ATTR_T, tensorSize(a.tensor));
  return n;
}

function attributeType(a: AttributeValue): number {
  if ("int" in a) return ATTR_TYPE_INT;
  if ("float" in a) return ATTR_TYPE_FLOAT;
  if ("string" in a) return ATTR_TYPE_STRING;
  if ("ints" in a) return ATTR_TYPE_INTS;
  if ("floats" in a) return ATTR_TYPE_FLOATS;
  return ATTR_TYPE_TENSOR;
}

function nodeSize(node: NodeSpec): number {
  let n = 0;
  for (const input of node.inputs) n += stringFieldSize(NODE_INPUT, input);
  for (const output of node.outputs) n += stringFieldSize(NODE_OUTPUT, output);
  if (node.name !== undefined) n += stringFieldSize(NODE_NAME, node.name);
  n += stringFieldSize(NODE_OP_TYPE, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    n += lenFieldSize(NODE_ATTRIBUTE, attributeSize(name, value));
  }
  if (node.domain !== undefined && node.domain !== "") {
    n += stringFieldSize(NODE_DOMAIN, node.domain);
  }
  return n;
}

function dimensionSize(dim: number | string): number {
  return typeof dim === "number"
    ? varintFieldSize(DIM_VALUE, dim)
    : stringFieldSize(DIM_PARAM, dim);
}

function shapeSize(shape: (number | string)[]): number {
  let n = 0;
  for (const dim of shape) n += lenFieldSize(SHAPE_DIM, dimensionSize(dim));
  return n;
}

function tensorTypeSize(v: ValueInfo): number {
  return varintFieldSize(TENSOR_TYPE_ELEM_TYPE, DATA_TYPE_CODES[v.dataType]) +
    lenFieldSize(TENSOR_TYPE_SHAPE, shapeSize(v.shape));
}

function typeSize(v: ValueInfo): number {
  return lenFieldSize(TYPE_TENSOR_TYPE, tensorTypeSize(v));
}

function valueInfoSize(v: ValueInfo): number {
  return stringFieldSize(VALUE_INFO_NAME, v.name) + lenFieldSize(VALUE_INFO_TYPE, typeSize(v));
}

function graphSize(g: GraphSpec): number {
  let n = 0;
  for (const node of g.nodes) n += lenFieldSize(GRAPH_NODE, nodeSize(node));
  n += stringFieldSize(GRAPH_NAME, g.name);
  for (const t of g.initializers) n += lenFieldSize(GRAPH_INITIALIZER, tensorSize(t));
  for (const v of g.inputs) n += lenFieldSize(GRAPH_INPUT, valueInfoSize(v));
  for (const v of g.outputs) n += lenFieldSize(GRAPH_OUTPUT, valueInfoSize(v));
  return n;
}

// ---------------------------------------------------------------------------------------------
// Writing (field order matches the size functions above)

function writeTensor(w: Writer, t: TensorData): void {
  if (t.dims.length > 0) w.packedVarints(TENSOR_DIMS, t.dims);
  w.varintField(TENSOR_DATA_TYPE, DATA_TYPE_CODES[t.dataType]);
  w.stringField(TENSOR_NAME, t.name);
  w.bytesField(
    TENSOR_RAW_DATA,
    new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  );
}

function writeAttribute(w: Writer, name: string, a: AttributeValue): void {
  w.stringField(ATTR_NAME, name);
  w.varintField(ATTR_TYPE, attributeType(a));
  if ("int" in a) w.varintField(ATTR_I, a.int);
  else if ("float" in a) w.float32Field(ATTR_F, a.float);
  else if ("string" in a) w.stringField(ATTR_S, a.string);
  else if ("ints" in a) w.packedVarints(ATTR_INTS, a.ints);
  else if ("floats" in a) w.packedFloats(ATTR_FLOATS, a.floats);
  else w.message(ATTR_T, tensorSize(a.tensor), () => writeTensor(w, a.tensor));
}

function writeNode(w: Writer, node: NodeSpec): void {
  for (const input of node.inputs) w.stringField(NODE_INPUT, input);
  for (const output of node.outputs) w.stringField(NODE_OUTPUT, output);
  if (node.name !== undefined) w.stringField(NODE_NAME, node.name);
  w.stringField(NODE_OP_TYPE, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    w.message(NODE_ATTRIBUTE, attributeSize(name, value), () => writeAttribute(w, name, value));
  }
  if (node.domain !== undefined && node.domain !== "") w.stringField(NODE_DOMAIN, node.domain);
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.stringField(VALUE_INFO_NAME, v.name);
  w.message(VALUE_INFO_TYPE, typeSize(v), () => {
    w.message(TYPE_TENSOR_TYPE, tensorTypeSize(v), () => {
      w.varintField(TENSOR_TYPE_ELEM_TYPE, DATA_TYPE_CODES[v.dataType]);
      w.message(TENSOR_TYPE_SHAPE, shapeSize(v.shape), () => {
        for (const dim of v.shape) {
          w.message(SHAPE_DIM, dimensionSize(dim), () => {
            if (typeof dim === "number") w.varintField(DIM_VALUE, dim);
            else w.stringField(DIM_PARAM, dim);
          });
        }
      });
    });
  });
}

function writeGraph(w: Writer, g: GraphSpec): void {
  for (const node of g.nodes) w.message(GRAPH_NODE, nodeSize(node), () => writeNode(w, node));
  w.stringField(GRAPH_NAME, g.name);
  for (const t of g.initializers) {
    w.message(GRAPH_INITIALIZER, tensorSize(t), () => writeTensor(w, t));
  }
  for (const v of g.inputs) w.message(GRAPH_INPUT, valueInfoSize(v), () => writeValueInfo(w, v));
  for (const v of g.outputs) w.message(GRAPH_OUTPUT, valueInfoSize(v), () => writeValueInfo(w, v));
}

// ---------------------------------------------------------------------------------------------
// Validation

function checkInt(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) {
    throw new InputError(`${what}: expected a safe integer, got ${value}`);
  }
}

const ARRAY_TYPES: Readonly<Record<DataType, { ctor: unknown; label: string }>> = {
  float32: { ctor: Float32Array, label: "Float32Array" },
  float16: { ctor: Uint16Array, label: "Uint16Array" },
  int64: { ctor: BigInt64Array, label: "BigInt64Array" },
  int32: { ctor: Int32Array, label: "Int32Array" },
  bool: { ctor: Uint8Array, label: "Uint8Array" },
  uint8: { ctor: Uint8Array, label: "Uint8Array" },
};

function validateTensor(t: TensorData, where: string): void {
  const what = `${where}: tensor "${t.name}"`;
  const expected = ARRAY_TYPES[t.dataType];
  if (expected === undefined) {
    throw new InputError(`${what}: unsupported data type "${t.dataType}"`);
  }
  if (t.data.constructor !== expected.ctor) {
    throw new InputError(
      `${what}: data type ${t.dataType} needs a ${expected.label}, got ${t.data.constructor.name}`,
    );
  }
  let count = 1;
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new InputError(`${what}: dims [${t.dims.join(", ")}] must be non-negative integers`);
    }
    count *= d;
  }
  if (count !== t.data.length) {
    throw new InputError(
      `${what}: dims [${t.dims.join(", ")}] hold ${count} elements, data has ${t.data.length}`,
    );
  }
}

function validateValueInfo(v: ValueInfo, where: string): void {
  if (DATA_TYPE_CODES[v.dataType] === undefined) {
    throw new InputError(`${where} "${v.name}": unsupported data type "${v.dataType}"`);
  }
  for (const d of v.shape) {
    if (typeof d === "number" && (!Number.isSafeInteger(d) || d < 0)) {
      throw new InputError(
        `${where} "${v.name}": shape [${
          v.shape.join(", ")
        }] has a dimension that is not a non-negative integer`,
      );
    }
  }
}

function validateAttribute(name: string, a: AttributeValue, where: string): void {
  const what = `${where}: attribute "${name}"`;
  if ("int" in a) checkInt(a.int, what);
  else if ("float" in a) {
    if (typeof a.float !== "number") throw new InputError(`${what}: float must be a number`);
  } else if ("string" in a) {
    if (typeof a.string !== "string") throw new InputError(`${what}: string must be a string`);
  } else if ("ints" in a) { for (const v of a.ints) checkInt(v, what); }
  else if ("floats" in a) {
    for (const v of a.floats) {
      if (typeof v !== "number") throw new InputError(`${what}: floats must be numbers`);
    }
  } else if ("tensor" in a) validateTensor(a.tensor, what);
  else throw new InputError(`${what}: expected one of int, float, string, ints, floats, tensor`);
}

function validateGraph(g: GraphSpec): void {
  const where = `graph "${g.name}"`;
  for (const t of g.initializers) validateTensor(t, `${where} initializer`);
  for (const v of g.inputs) validateValueInfo(v, `${where} input`);
  for (const v of g.outputs) validateValueInfo(v, `${where} output`);
  for (const [i, node] of g.nodes.entries()) {
    const label = `${where} node ${node.name ?? i} (${node.opType})`;
    if (node.opType === "") throw new InputError(`${label}: empty opType`);
    for (const [name, value] of Object.entries(node.attributes ?? {})) {
      validateAttribute(name, value, label);
    }
  }
}
