import { assert, assertClose, assertEquals, assertThrows } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { createSession, loadOrt, type OrtTensor, readF32, tensorF16, tensorF32 } from "../ort.ts";
import { encodeModel, encodeVarint, type GraphSpec, type NodeSpec, varintSize } from "./proto.ts";

// Tensor helpers need the module loaded.
await loadOrt();

function f32(values: number[]): Float32Array {
  return new Float32Array(values);
}

function i64(values: number[]): BigInt64Array {
  return BigInt64Array.from(values, (v) => BigInt(v));
}

function indexOfBytes(haystack: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function runGraph(
  graph: GraphSpec,
  feeds: Record<string, OrtTensor>,
): Promise<Record<string, OrtTensor>> {
  const session = await createSession(encodeModel(graph), { name: graph.name, threads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

Deno.test("varints: unsigned, multi-byte and negative int64 as 10-byte two's complement", () => {
  assertEquals([...encodeVarint(0)], [0]);
  assertEquals([...encodeVarint(1)], [1]);
  assertEquals([...encodeVarint(127)], [0x7f]);
  assertEquals([...encodeVarint(128)], [0x80, 0x01]);
  assertEquals([...encodeVarint(300)], [0xac, 0x02]);
  assertEquals([...encodeVarint(2 ** 32)], [0x80, 0x80, 0x80, 0x80, 0x10]);
  assertEquals([...encodeVarint(2 ** 53 - 1)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
  assertEquals([...encodeVarint(-1)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assertEquals([...encodeVarint(-2)], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  // -2^32: low 32 bits zero, high bits all ones.
  assertEquals(
    [...encodeVarint(-(2 ** 32))],
    [0x80, 0x80, 0x80, 0x80, 0xf0, 0xff, 0xff, 0xff, 0xff, 0x01],
  );
  assertEquals(varintSize(-5), 10);
  assertEquals(varintSize(2 ** 31), 5);
  assertThrows(() => encodeVarint(1.5), InputError, "safe integer");
});

Deno.test("encodeModel: exact bytes of an empty graph", () => {
  const bytes = encodeModel(
    { name: "g", nodes: [], inputs: [], outputs: [], initializers: [] },
    { opsetVersion: 17, irVersion: 8, producerName: "p" },
  );
  // deno-fmt-ignore
  const expected = [
    0x08, 0x08, // ir_version = 8
    0x12, 0x01, 0x70, // producer_name = "p"
    0x3a, 0x03, 0x12, 0x01, 0x67, // graph { name = "g" }
    0x42, 0x04, 0x0a, 0x00, 0x10, 0x11, // opset_import { domain = "", version = 17 }
  ];
  assertEquals([...bytes], expected);
});

Deno.test("encodeModel: attribute with negative int has type field 20 and a 10-byte varint", () => {
  const bytes = encodeModel({
    name: "g",
    nodes: [{
      opType: "Softmax",
      inputs: ["x"],
      outputs: ["y"],
      attributes: { axis: { int: -1 } },
    }],
    inputs: [{ name: "x", dataType: "float32", shape: [2] }],
    outputs: [{ name: "y", dataType: "float32", shape: [2] }],
    initializers: [],
  });
  // deno-fmt-ignore
  const attribute = [
    0x2a, 20, // NodeProto.attribute, 20 bytes
    0x0a, 0x04, 0x61, 0x78, 0x69, 0x73, // name = "axis"
    0xa0, 0x01, 0x02, // type = INT
    0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // i = -1
  ];
  assert(indexOfBytes(bytes, attribute) >= 0, "attribute bytes not found");
});

Deno.test("encodeModel: rejects mismatched tensor data with InputError naming the tensor", () => {
  const graph = (data: Float32Array | Int32Array, dims: number[]): GraphSpec => ({
    name: "bad",
    nodes: [],
    inputs: [],
    outputs: [],
    initializers: [{ name: "w", dataType: "float32", dims, data }],
  });
  assertThrows(() => encodeModel(graph(f32([1, 2, 3]), [2, 2])), InputError, `"w"`);
  assertThrows(() => encodeModel(graph(new Int32Array(4), [2, 2])), InputError, "Float32Array");
  assertThrows(() => encodeModel(graph(f32([1]), [1.5])), InputError, "non-negative integers");
});

Deno.test("ORT round trip: Gemm(transB, alpha, beta) + broadcast Add + Softmax(-1) + MatMul", async () => {
  // x [2,3], w [4,3], c [4]; y = softmax(0.5·x·wᵀ + 2·c + bias) · m, m [4,2]
  const x = f32([1, -2, 3, 0.5, 0.25, -1]);
  const w = f32([0.1, 0.2, 0.3, -0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1, 0, -1]);
  const c = f32([0.01, -0.02, 0.03, 0.04]);
  const bias = f32([1, 0, -1, 0.5]);
  const m = f32([1, 2, 3, 4, 5, 6, 7, 8]);
  const nodes: NodeSpec[] = [
    {
      opType: "Gemm",
      inputs: ["x", "w", "c"],
      outputs: ["g"],
      attributes: { transB: { int: 1 }, alpha: { float: 0.5 }, beta: { float: 2 } },
    },
    { opType: "Add", inputs: ["g", "bias"], outputs: ["a"] },
    { opType: "Softmax", inputs: ["a"], outputs: ["p"], attributes: { axis: { int: -1 } } },
    { opType: "MatMul", inputs: ["p", "m"], outputs: ["y"] },
  ];
  const out = await runGraph({
    name: "gemm_softmax",
    nodes,
    inputs: [{ name: "x", dataType: "float32", shape: ["rows", 3] }],
    outputs: [
      { name: "y", dataType: "float32", shape: ["rows", 2] },
      { name: "p", dataType: "float32", shape: ["rows", 4] },
    ],
    initializers: [
      { name: "w", dataType: "float32", dims: [4, 3], data: w },
      { name: "c", dataType: "float32", dims: [4], data: c },
      { name: "bias", dataType: "float32", dims: [4], data: bias },
      { name: "m", dataType: "float32", dims: [4, 2], data: m },
    ],
  }, { x: tensorF32(x, [2, 3]) });

  const p: number[] = [];
  const y: number[] = [];
  for (let r = 0; r < 2; r++) {
    const logits = [0, 1, 2, 3].map((o) => {
      let dot = 0;
      for (let k = 0; k < 3; k++) dot += x[r * 3 + k] * w[o * 3 + k];
      return 0.5 * dot + 2 * c[o] + bias[o];
    });
    const max = Math.max(...logits);
    const exps = logits.map((v) => Math.exp(v - max));
    const sum = exps.reduce((s, v) => s + v, 0);
    const row = exps.map((v) => v / sum);
    p.push(...row);
    for (let j = 0; j < 2; j++) y.push(row.reduce((s, v, o) => s + v * m[o * 2 + j], 0));
  }
  assertEquals(out.y.dims, [2, 2]);
  // Softmax goes through an exp approximation: 1e-5 relative.
  assertClose(readF32(out.p), p, 1e-5);
  assertClose(readF32(out.y), y, 1e-5);
});

Deno.test("ORT round trip: ReduceSum (axes input), ReduceMax/ReduceMean (axes attribute), keepdims 0", async () => {
  const x = f32([1, 5, -2, 4, 0.5, -3, 7, 2, 9, 1, -1, 6]); // [3, 4]
  const out = await runGraph({
    name: "reductions",
    nodes: [
      // ReduceSum takes axes as an input since opset 13; the others until opset 18 as an attribute.
      {
        opType: "ReduceSum",
        inputs: ["x", "axes1"],
        outputs: ["sum"],
        attributes: { keepdims: { int: 0 } },
      },
      {
        opType: "ReduceMax",
        inputs: ["x"],
        outputs: ["max"],
        attributes: { axes: { ints: [-1] }, keepdims: { int: 0 } },
      },
      {
        opType: "ReduceMean",
        inputs: ["x"],
        outputs: ["mean"],
        attributes: { axes: { ints: [0] }, keepdims: { int: 0 } },
      },
    ],
    inputs: [{ name: "x", dataType: "float32", shape: [3, 4] }],
    outputs: [
      { name: "sum", dataType: "float32", shape: [3] },
      { name: "max", dataType: "float32", shape: [3] },
      { name: "mean", dataType: "float32", shape: [4] },
    ],
    initializers: [{ name: "axes1", dataType: "int64", dims: [1], data: i64([1]) }],
  }, { x: tensorF32(x, [3, 4]) });
  assertEquals(out.sum.dims, [3]);
  assertClose(readF32(out.sum), [8, 6.5, 15], 1e-6);
  assertClose(readF32(out.max), [5, 7, 9], 0);
  assertClose(readF32(out.mean), [(1 + 0.5 + 9) / 3, (5 - 3 + 1) / 3, (-2 + 7 - 1) / 3, 4], 1e-6);
});

Deno.test("ORT round trip: Reshape/Transpose/Split/Concat/Slice with negative int64 initializers", async () => {
  const x = f32(Array.from({ length: 12 }, (_, i) => i)); // [2, 6]
  const out = await runGraph({
    name: "shapes",
    nodes: [
      { opType: "Reshape", inputs: ["x", "shape"], outputs: ["r"] }, // [3, 4]
      {
        opType: "Transpose",
        inputs: ["r"],
        outputs: ["t"],
        attributes: { perm: { ints: [1, 0] } },
      }, // [4, 3]
      {
        opType: "Split",
        inputs: ["t", "split"],
        outputs: ["a", "b"],
        attributes: { axis: { int: 0 } },
      }, // [1, 3], [3, 3]
      { opType: "Concat", inputs: ["b", "a"], outputs: ["c"], attributes: { axis: { int: -2 } } }, // [4, 3]
      { opType: "Slice", inputs: ["c", "starts", "ends", "axes", "steps"], outputs: ["s"] },
    ],
    inputs: [{ name: "x", dataType: "float32", shape: [2, 6] }],
    outputs: [{ name: "s", dataType: "float32", shape: [3, 2] }],
    initializers: [
      { name: "shape", dataType: "int64", dims: [2], data: i64([3, -1]) },
      { name: "split", dataType: "int64", dims: [2], data: i64([1, 3]) },
      // rows -3..-1 → rows 1..2, cols: from the end backwards with step -2 → cols 2, 0
      { name: "starts", dataType: "int64", dims: [2], data: i64([-3, -1]) },
      { name: "ends", dataType: "int64", dims: [2], data: i64([-1, -(2 ** 40)]) },
      { name: "axes", dataType: "int64", dims: [2], data: i64([0, -1]) },
      { name: "steps", dataType: "int64", dims: [2], data: i64([1, -2]) },
    ],
  }, { x: tensorF32(x, [2, 6]) });
  // r = [[0..3],[4..7],[8..11]]; t[i][j] = r[j][i]; c = [t1, t2, t3, t0]
  const t = (i: number, j: number) => j * 4 + i;
  const c = [1, 2, 3, 0].map((i) => [t(i, 0), t(i, 1), t(i, 2)]);
  const expected = [c[1][2], c[1][0], c[2][2], c[2][0]];
  assertEquals(out.s.dims, [2, 2]);
  assertEquals([...readF32(out.s)], expected);
});

Deno.test("ORT round trip: Less/Where/Cast and Tanh/Sigmoid/Sqrt/Div", async () => {
  const x = f32([-2, -0.5, 0, 0.75, 3]);
  const out = await runGraph({
    name: "elementwise",
    nodes: [
      { opType: "Less", inputs: ["x", "zero"], outputs: ["neg"] },
      { opType: "Mul", inputs: ["x", "two"], outputs: ["x2"] },
      { opType: "Where", inputs: ["neg", "x2", "x"], outputs: ["w"] },
      { opType: "Cast", inputs: ["neg"], outputs: ["negf"], attributes: { to: { int: 1 } } },
      { opType: "Cast", inputs: ["x"], outputs: ["xi"], attributes: { to: { int: 6 } } },
      { opType: "Tanh", inputs: ["x"], outputs: ["th"] },
      { opType: "Sigmoid", inputs: ["x"], outputs: ["sg"] },
      { opType: "Add", inputs: ["sg", "two"], outputs: ["sg2"] },
      { opType: "Sqrt", inputs: ["sg2"], outputs: ["sq"] },
      { opType: "Div", inputs: ["th", "sq"], outputs: ["d"] },
    ],
    inputs: [{ name: "x", dataType: "float32", shape: ["n"] }],
    outputs: [
      { name: "w", dataType: "float32", shape: ["n"] },
      { name: "negf", dataType: "float32", shape: ["n"] },
      { name: "xi", dataType: "int32", shape: ["n"] },
      { name: "d", dataType: "float32", shape: ["n"] },
    ],
    initializers: [
      { name: "zero", dataType: "float32", dims: [], data: f32([0]) },
      { name: "two", dataType: "float32", dims: [1], data: f32([2]) },
    ],
  }, { x: tensorF32(x, [5]) });
  assertEquals([...readF32(out.w)], [-4, -1, 0, 0.75, 3]);
  assertEquals([...readF32(out.negf)], [1, 1, 0, 0, 0]);
  assertEquals(out.xi.type, "int32");
  assertEquals([...(out.xi.data as Int32Array)], [-2, 0, 0, 0, 3]);
  const expected = [...x].map((v) => Math.tanh(v) / Math.sqrt(1 / (1 + Math.exp(-v)) + 2));
  assertClose(readF32(out.d), expected, 1e-5);
});

Deno.test("ORT round trip: float16 Cast, tensor/floats/ints/string attributes", async () => {
  // Constant with a float16 tensor attribute [1, -2, 0.5] (half bits), cast to float32 and added
  // to x; the sum is cast to float16 and returned. Pad with mode "reflect" checks a string
  // attribute; Constant value_floats / value_ints check repeated attributes.
  const half = new Uint16Array([0x3c00, 0xc000, 0x3800]);
  const out = await runGraph({
    name: "f16_attrs",
    nodes: [
      {
        opType: "Constant",
        inputs: [],
        outputs: ["h"],
        attributes: {
          value: { tensor: { name: "h", dataType: "float16", dims: [3], data: half } },
        },
      },
      { opType: "Cast", inputs: ["h"], outputs: ["hf"], attributes: { to: { int: 1 } } },
      { opType: "Add", inputs: ["x", "hf"], outputs: ["s"] },
      { opType: "Cast", inputs: ["s"], outputs: ["s16"], attributes: { to: { int: 10 } } },
      {
        opType: "Constant",
        inputs: [],
        outputs: ["fl"],
        attributes: { value_floats: { floats: [0.25, -8] } },
      },
      {
        opType: "Constant",
        inputs: [],
        outputs: ["pads"],
        attributes: { value_ints: { ints: [2, 1] } },
      },
      {
        opType: "Pad",
        inputs: ["x", "pads"],
        outputs: ["padded"],
        attributes: { mode: { string: "reflect" } },
      },
    ],
    inputs: [{ name: "x", dataType: "float32", shape: [3] }],
    outputs: [
      { name: "s16", dataType: "float16", shape: [3] },
      { name: "fl", dataType: "float32", shape: [2] },
      { name: "padded", dataType: "float32", shape: [6] },
    ],
    initializers: [],
  }, { x: tensorF32(f32([10, 20, 30]), [3]) });
  assertEquals(out.s16.type, "float16");
  assertEquals([...readF32(out.s16)], [11, 18, 30.5]);
  assertEquals([...readF32(out.fl)], [0.25, -8]);
  assertEquals([...readF32(out.padded)], [30, 20, 10, 20, 30, 20]);
});

Deno.test("ORT round trip: float16 graph input and initializer", async () => {
  const out = await runGraph({
    name: "f16_io",
    nodes: [{ opType: "Mul", inputs: ["x", "k"], outputs: ["y"] }],
    inputs: [{ name: "x", dataType: "float16", shape: [2] }],
    outputs: [{ name: "y", dataType: "float16", shape: [2] }],
    initializers: [{ name: "k", dataType: "float16", dims: [], data: new Uint16Array([0x4000]) }], // 2
  }, { x: tensorF16(new Uint16Array([0x3c00, 0xbc00]), [2]) }); // [1, -1]
  assertEquals([...(out.y.data as Uint16Array)], [0x4000, 0xc000]); // [2, -2]
});
