import { assert, assertClose, assertEquals, assertThrows } from "../../tests/assert.ts";
import { InputError } from "../../errors.ts";
import { createSession, loadOrt, type OrtTensor, readF32, tensorF32 } from "../ort.ts";
import { GraphBuilder, tensorDataF32 } from "./graph.ts";

await loadOrt();

/** Deterministic values in [-2, 2). */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 4 - 2;
  }
  return out;
}

async function run(
  g: GraphBuilder,
  feeds: Record<string, OrtTensor>,
): Promise<Record<string, OrtTensor>> {
  const session = await createSession(g.build(), { name: g.name, threads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

Deno.test("rmsNorm matches x / sqrt(mean(x²) + eps) · w over the last axis", async () => {
  const rows = 3, dim = 8, eps = 1e-6;
  const x = values(rows * dim, 1);
  const w = values(dim, 2);
  const g = new GraphBuilder("rms");
  const xin = g.input("x", "float32", ["T", dim]);
  const y = g.rmsNorm(xin, g.initializer("w", tensorDataF32(w, [dim])), eps);
  g.output(y, { name: "y", dataType: "float32", shape: ["T", dim] });
  const out = await run(g, { x: tensorF32(x, [rows, dim]) });
  const expected: number[] = [];
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) expected.push(x[r * dim + i] * inv * w[i]);
  }
  assertClose(readF32(out.y), expected, 1e-6);
});

Deno.test("rmsNorm of a 3-D input normalises each last-axis row alone (per-head q/k norms)", async () => {
  const rows = 2 * 3, dim = 4, eps = 1e-6;
  const x = values(rows * dim, 5).map((v, i) => v * (1 + (i >> 2))); // rows of different scales
  const w = values(dim, 6);
  const g = new GraphBuilder("rms3d");
  const xin = g.input("x", "float32", ["T", 3, dim]);
  g.output(g.rmsNorm(xin, g.initializer("w", tensorDataF32(w, [dim])), eps), {
    name: "y",
    dataType: "float32",
    shape: ["T", 3, dim],
  });
  const out = await run(g, { x: tensorF32(x, [2, 3, dim]) });
  const expected: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * dim, (r + 1) * dim);
    const inv = 1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / dim + eps);
    for (let i = 0; i < dim; i++) expected.push(row[i] * inv * w[i]);
  }
  assertClose(readF32(out.y), expected, 1e-6);
});

Deno.test("rmsNorm over axis 0 without weight, at opset 18 (axes as input)", async () => {
  const x = values(6, 3); // [3, 2], normalised down columns
  const g = new GraphBuilder("rms18", { opsetVersion: 18 });
  const y = g.rmsNorm(g.input("x", "float32", [3, 2]), null, 1e-5, { axis: 0 });
  g.output(y, { name: "y", dataType: "float32", shape: [3, 2] });
  const out = await run(g, { x: tensorF32(x, [3, 2]) });
  const expected = new Float64Array(6);
  for (let c = 0; c < 2; c++) {
    const ms = (x[c] ** 2 + x[2 + c] ** 2 + x[4 + c] ** 2) / 3;
    for (let r = 0; r < 3; r++) expected[r * 2 + c] = x[r * 2 + c] / Math.sqrt(ms + 1e-5);
  }
  assertClose(readF32(out.y), expected, 1e-6);
});

Deno.test("silu and geluTanh match their formulas", async () => {
  const x = values(64, 4).map((v) => v * 3);
  const g = new GraphBuilder("acts");
  const xin = g.input("x", "float32", ["n"]);
  g.output(g.silu(xin), { name: "silu", dataType: "float32", shape: ["n"] });
  g.output(g.geluTanh(xin), { name: "gelu", dataType: "float32", shape: ["n"] });
  const out = await run(g, { x: tensorF32(x, [x.length]) });
  const silu = [...x].map((v) => v / (1 + Math.exp(-v)));
  const c = Math.sqrt(2 / Math.PI);
  const gelu = [...x].map((v) => 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v ** 3))));
  // Sigmoid and Tanh use vectorised approximations whose relative error grows in the negative
  // tails (and GELU's 1 + tanh cancels there): 1e-5 relative above |y| = 1, 1e-5 absolute below.
  assertClose(readF32(out.silu), silu, 1e-5, 1);
  assertClose(readF32(out.gelu), gelu, 1e-5, 1);
});

Deno.test("gemm with bias computes x·Wᵀ + b for an HF [out, in] weight", async () => {
  const rows = 5, inDim = 7, outDim = 3;
  const x = values(rows * inDim, 5);
  const w = values(outDim * inDim, 6);
  const b = values(outDim, 7);
  const g = new GraphBuilder("gemm");
  const y = g.gemm(
    g.input("x", "float32", ["T", inDim]),
    g.initializer("w", tensorDataF32(w, [outDim, inDim])),
    g.constantF32(b),
  );
  g.output(y, { name: "y", dataType: "float32", shape: ["T", outDim] });
  const out = await run(g, { x: tensorF32(x, [rows, inDim]) });
  const expected: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let acc = b[o];
      for (let k = 0; k < inDim; k++) acc += x[r * inDim + k] * w[o * inDim + k];
      expected.push(acc);
    }
  }
  assertEquals(out.y.dims, [rows, outDim]);
  assertClose(readF32(out.y), expected, 1e-5, 1e-3);
});

Deno.test("reshape, transpose, nodeMulti Split and output renaming", async () => {
  const x = Float32Array.from({ length: 12 }, (_, i) => i);
  const g = new GraphBuilder("shapes");
  const xin = g.input("x", "float32", [12]);
  const t = g.transpose(g.reshape(xin, [3, -1]), [1, 0]); // [4, 3]
  const [a, b] = g.nodeMulti("Split", [t, g.constantI64([1, 3])], 2, { axis: { int: 0 } });
  g.output(a, { name: "first", dataType: "float32", shape: [1, 3] });
  g.output(b, { name: "rest", dataType: "float32", shape: [3, 3] });
  g.output(xin, { name: "echo", dataType: "float32", shape: [12] });
  const spec = g.spec();
  assertEquals(spec.nodes.filter((n) => n.opType === "Identity").length, 3);
  const out = await run(g, { x: tensorF32(x, [12]) });
  assertEquals([...readF32(out.first)], [0, 4, 8]);
  assertEquals([...readF32(out.rest)], [1, 5, 9, 2, 6, 10, 3, 7, 11]);
  assertEquals([...readF32(out.echo)], [...x]);
});

Deno.test("builder: scalar constants are shared; bad names and inputs raise InputError", () => {
  const g = new GraphBuilder("errors");
  const x = g.input("x", "float32", [2]);
  assertEquals(g.constantF32(1), g.constantF32(1));
  assert(g.constantF32(1) !== g.constantF32(2));
  assertEquals(g.spec().initializers.length, 2);
  assertThrows(() => g.input("x", "float32", [2]), InputError, `"x" is already used`);
  assertThrows(() => g.node("Relu", ["nope"]), InputError, `input "nope" is not defined`);
  assertThrows(() => g.build(), InputError, "no outputs");
  g.output(g.node("Relu", [x]), { name: "y", dataType: "float32", shape: [2] });
  assertThrows(
    () => g.output(x, { name: "y", dataType: "float32", shape: [2] }),
    InputError,
    "declared twice",
  );
  assert(g.build().byteLength > 0);
});
