/**
 * The gate forward pinned down three ways: the plain-loop implementation against an
 * independent transcription of spec §1.3 (the official code's `1 / (1 + Σ exp(sink − self))`
 * form, written afresh here), the onnxruntime scorer against the plain loops, and the layer
 * bookkeeping (gated layers, dims, init).
 */

import { assert, assertAlmostEquals, assertClose, assertEquals } from "../../tests/assert.ts";
import { seededNormal } from "../../kernels/random.ts";
import { parseModelConfig } from "../../engine/config.ts";
import { tinyConfigJson } from "../../engine/random_model.ts";
import {
  type GateDims,
  gateDimsFor,
  gatedLayers,
  gateForward,
  type GateLayerWeights,
  GateScorer,
  initGateSet,
  randomGates,
} from "./gate.ts";

/** Spec §1.3 read literally, one (t, h, g) at a time, every vector built from scratch. */
function specScore(
  dims: GateDims,
  w: GateLayerWeights,
  x: Float32Array,
  { t, h }: { t: number; h: number },
): number {
  const { hiddenSize: D, group: G, gateDim: d, sinks: S, numKvHeads: H } = dims;
  const row = Array.from(x.subarray(t * D, (t + 1) * D));
  const linear = (weight: Float32Array, r: number, bias: number) =>
    row.reduce((acc, xi, i) => acc + weight[r * D + i] * xi, bias);
  const rms = (v: number[], weight: Float32Array) => {
    const m = v.reduce((acc, vi) => acc + vi * vi, 0) / v.length;
    return v.map((vi, j) => (vi / Math.sqrt(m + 1e-6)) * weight[j]);
  };
  const kRaw = Array.from({ length: d }, (_, j) => linear(w.kWeight, h * d + j, 0));
  const k = rms(kRaw, w.kNorm);
  let total = 0;
  for (let g = 0; g < G; g++) {
    const qRaw = Array.from(
      { length: d },
      (_, j) => linear(w.qWeight, (h * G + g) * d + j, w.qBias[(h * G + g) * d + j]),
    );
    const q = rms(qRaw, w.qNorm);
    const self = k.reduce((acc, kj, j) => acc + kj * q[j], 0) / Math.sqrt(d) + w.bias[h * G + g];
    let denominator = 1;
    for (let s = 0; s < S; s++) {
      let z = 0;
      for (let j = 0; j < d; j++) z += w.kBase[(h * S + s) * d + j] * q[j];
      denominator += Math.exp(z / Math.sqrt(d) - self);
    }
    total += 1 / denominator;
  }
  assert(h < H);
  return total / G;
}

const DIMS: GateDims = { hiddenSize: 24, numKvHeads: 2, group: 3, gateDim: 16, sinks: 16 };

function randomInputs(tokens: number, width: number, seed: number): Float32Array {
  const normal = seededNormal(seed);
  return Float32Array.from({ length: tokens * width }, () => 1.5 * normal());
}

Deno.test("gateForward equals the spec formula on small random tensors", () => {
  const gates = randomGates(DIMS, { layers: [0], seed: 7 });
  const T = 6;
  const x = randomInputs(T, DIMS.hiddenSize, 8);
  const scores = gateForward({ dims: DIMS, weights: gates.layers[0] }, x);
  assertEquals(scores.length, DIMS.numKvHeads * T);
  let spread = 0;
  for (let h = 0; h < DIMS.numKvHeads; h++) {
    for (let t = 0; t < T; t++) {
      const want = specScore(DIMS, gates.layers[0], x, { t, h });
      assertAlmostEquals(scores[h * T + t], want, 1e-6);
      assert(scores[h * T + t] > 0 && scores[h * T + t] < 1);
      spread = Math.max(spread, Math.abs(scores[h * T + t] - scores[0]));
    }
  }
  assert(spread > 0.05, `scores should differ across tokens and heads (spread ${spread})`);
});

Deno.test("the onnxruntime scorer agrees with the plain loops", async () => {
  const dims: GateDims = { hiddenSize: 40, numKvHeads: 2, group: 3, gateDim: 16, sinks: 16 };
  const gates = randomGates(dims, { layers: [0, 2], seed: 11 });
  const scorer = await GateScorer.create(gates, { threads: 1 });
  try {
    assertEquals(scorer.layers, [0, 2]);
    assert(scorer.has(2) && !scorer.has(1));
    for (const T of [1, 7, 33]) {
      const x = randomInputs(T, dims.hiddenSize, T);
      for (const w of gates.layers) {
        const want = gateForward({ dims, weights: w }, x);
        const got = await scorer.score(w.layer, x);
        assertClose(got, want, 1e-5, 1e-4);
        // The split form: hidden · projection(layer) outside, then the gate's head.
        const projection = await scorer.projection(w.layer);
        assert(projection === await scorer.projection(w.layer), "one array per layer");
        const P = projection.length / dims.hiddenSize;
        const projected = new Float32Array(T * P);
        for (let t = 0; t < T; t++) {
          for (let p = 0; p < P; p++) {
            let acc = 0;
            for (let i = 0; i < dims.hiddenSize; i++) {
              acc += x[t * dims.hiddenSize + i] * projection[i * P + p];
            }
            projected[t * P + p] = acc;
          }
        }
        assertClose(await scorer.scoreProjected(w.layer, projected), want, 1e-5, 1e-4);
      }
    }
    assertEquals((await scorer.score(0, new Float32Array(0))).length, 0);
  } finally {
    await scorer.release();
  }
});

Deno.test("the onnxruntime scorer saturates like the plain loops when logits are large", async () => {
  // Biases large enough that exp(sink − self) overflows float32 on KV head 0 and underflows on
  // KV head 1: scores must reach 0 and 1, never NaN.
  const dims: GateDims = { hiddenSize: 24, numKvHeads: 2, group: 2, gateDim: 16, sinks: 4 };
  const gates = randomGates(dims, { layers: [0], seed: 5 });
  const w = gates.layers[0];
  for (let i = 0; i < w.kBase.length; i++) w.kBase[i] *= 60;
  w.bias.set([-300, -300, 300, 300]);
  const scorer = await GateScorer.create(gates, { threads: 1 });
  try {
    const x = randomInputs(64, dims.hiddenSize, 3);
    const want = gateForward({ dims, weights: w }, x);
    const got = await scorer.score(0, x);
    assert(got.every(Number.isFinite), "no NaN or infinity");
    assert(
      want.some((v) => v < 1e-6) && want.some((v) => v > 0.4),
      "saturated and unsaturated cases",
    );
    assertClose(got, want, 1e-5, 1e-4);
  } finally {
    await scorer.release();
  }
});

Deno.test("fresh sinks and bias with a zero key give 1/(1 + S) for every token", () => {
  // k_base = 0 makes every sink logit 0 and b = 0; a zero k_proj makes the self logit 0, so
  // p = sigmoid(0 − log S) = 1/(1 + S) = 1/17.
  const gates = initGateSet(DIMS, [0], { seed: 0 });
  const w = gates.layers[0];
  w.kWeight.fill(0);
  const scores = gateForward({ dims: DIMS, weights: w }, randomInputs(3, DIMS.hiddenSize, 1));
  for (const s of scores) assertAlmostEquals(s, 1 / 17, 1e-7);
});

Deno.test("gatedLayers: every layer for Qwen3, only the global layers for Gemma3", () => {
  const qwen = parseModelConfig(tinyConfigJson("qwen3"));
  assertEquals(gatedLayers(qwen), [0, 1, 2]);
  const gemma = parseModelConfig(tinyConfigJson("gemma3"));
  assertEquals(gatedLayers(gemma), [2]);
  const dims = gateDimsFor(qwen);
  assertEquals(dims, { hiddenSize: 40, numKvHeads: 2, group: 3, gateDim: 16, sinks: 16 });
});

Deno.test("initGateSet follows PyTorch's Linear init bounds and is seeded", () => {
  const a = initGateSet(DIMS, [1, 4], { seed: 3 });
  const b = initGateSet(DIMS, [1, 4], { seed: 3 });
  assertEquals(a, b);
  const bound = 1 / Math.sqrt(DIMS.hiddenSize);
  for (const w of a.layers) {
    assert(w.qWeight.every((v) => Math.abs(v) <= bound));
    assert(w.kBase.every((v) => v === 0) && w.bias.every((v) => v === 0));
    assert(w.qNorm.every((v) => v === 1));
  }
  assertEquals(a.layers.map((w) => w.layer), [1, 4]);
});
