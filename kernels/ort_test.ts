import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InputError } from "../errors.ts";
import { GraphBuilder } from "./onnx/graph.ts";
import {
  createSession,
  halfBitsToF32,
  loadOrt,
  readF32,
  tensorF16,
  tensorF32,
  tensorI32,
  tensorI64,
} from "./ort.ts";

await loadOrt();

function doubler(dataType: "float32" | "float16"): Uint8Array {
  const g = new GraphBuilder(`double_${dataType}`);
  const x = g.input("x", dataType, ["n"]);
  g.output(g.node("Add", [x, x]), { name: "y", dataType, shape: ["n"] });
  return g.build();
}

Deno.test("loadOrt: loads once and leaves the global Float16Array as it was", async () => {
  const before = (globalThis as { Float16Array?: unknown }).Float16Array;
  const a = await loadOrt();
  const b = await loadOrt();
  assert(a === b, "loadOrt returned two different modules");
  assertEquals((globalThis as { Float16Array?: unknown }).Float16Array, before);
});

Deno.test("createSession: an invalid graph is rejected with an error naming the graph", async () => {
  const g = new GraphBuilder("broken");
  const x = g.input("x", "float32", [2]);
  g.output(g.node("NoSuchOp", [x]), { name: "y", dataType: "float32", shape: [2] });
  const error = await assertRejects(
    () => createSession(g.build(), { name: "layer7_post" }),
    Error,
    `graph "layer7_post"`,
  );
  assert(error.message.includes("NoSuchOp"), error.message);
  await assertRejects(
    () => createSession(new Uint8Array([1, 2, 3]), { name: "garbage" }),
    Error,
    `onnxruntime rejected graph "garbage"`,
  );
  await assertRejects(
    () => createSession(doubler("float32"), { threads: 0 }),
    InputError,
    "threads",
  );
});

Deno.test("run: names, a missing feed names the graph", async () => {
  const session = await createSession(doubler("float32"), { name: "dbl", threads: 1 });
  try {
    assertEquals(session.inputNames, ["x"]);
    assertEquals(session.outputNames, ["y"]);
    await assertRejects(() => session.run({}), Error, `graph "dbl"`);
  } finally {
    await session.release();
  }
});

Deno.test("float16 input and output tensors round trip under Deno", async () => {
  const session = await createSession(doubler("float16"), { name: "dbl16", threads: 1 });
  try {
    const bits = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7bff]); // 1, -2, ~1/3, 65504
    const out = await session.run({ x: tensorF16(bits, [4]) });
    assertEquals(out.y.type, "float16");
    assertEquals(out.y.dims, [4]);
    // Doubling adds one to the exponent (65504·2 overflows to +inf = 0x7c00).
    assertEquals([...(out.y.data as Uint16Array)], [0x4000, 0xc400, 0x3955, 0x7c00]);
    assertEquals([...readF32(out.y)], [
      2,
      -4,
      halfBitsToF32(new Uint16Array([0x3955]))[0],
      Infinity,
    ]);
  } finally {
    await session.release();
  }
});

Deno.test("inputs may be subarray views; pre-allocated outputs are filled in place", async () => {
  const session = await createSession(doubler("float32"), { name: "dbl", threads: 1 });
  try {
    const backing = Float32Array.from({ length: 16 }, (_, i) => i);
    const view = backing.subarray(5, 9); // byteOffset 20, shorter than its buffer
    const plain = await session.run({ x: tensorF32(view, [4]) });
    assertEquals([...readF32(plain.y)], [10, 12, 14, 16]);

    const target = new Float32Array(8).fill(-1);
    const out = tensorF32(target.subarray(2, 6), [4]);
    const result = await session.run({ x: tensorF32(view, [4]) }, { outputs: { y: out } });
    assertEquals([...target], [-1, -1, 10, 12, 14, 16, -1, -1]);
    // The binding hands back a fresh copy, not the pre-allocated tensor.
    assertEquals([...readF32(result.y)], [10, 12, 14, 16]);
    assertEquals(Object.keys(result), ["y"]);
  } finally {
    await session.release();
  }
});

Deno.test("tensor helpers check dims; readF32 rejects non-float tensors", () => {
  assertThrows(() => tensorF32(new Float32Array(5), [2, 3]), InputError, "hold 6 elements");
  const ids = tensorI64([1, -2, 3], [3]);
  assertEquals([...(ids.data as BigInt64Array)], [1n, -2n, 3n]);
  assertThrows(() => readF32(ids), InputError, "got int64");
  const lengths = tensorI32([7, -1], [2, 1]);
  assertEquals(lengths.type, "int32");
  assertEquals([...(lengths.data as Int32Array)], [7, -1]);
  assertThrows(() => tensorI32(new Int32Array(3), [2]), InputError, "int32 tensor");
  assertEquals([...halfBitsToF32(new Uint16Array([0x0001, 0x8000, 0x7e00]))], [2 ** -24, -0, NaN]);
});
