/**
 * ONNX graphs of the dense work, built from the weights. Attention runs in the KV store
 * between a layer's two halves, so the forward pass alternates:
 *
 * - step l (0 ≤ l ≤ L): layer l − 1 after attention (o_proj, norms, MLP, residuals), then layer
 *   l before attention (input norm → hidden, q/k/v, q/k norms, RoPE);
 * - q/k/v are one Gemm over the stacked weights, and so are gate/up;
 * - attention of layer l over the store;
 * - head: final norm and LM head, x[T, D] → logits[T, vocab].
 *
 * The switches between families are the named fields of {@linkcode ModelConfig}.
 *
 * @module
 */

import { GraphBuilder, tensorDataF32 } from "../kernels/onnx/graph.ts";
import type { LayerWeights, LinearWeights, ModelConfig } from "./types.ts";
import { stackLinear } from "./weights.ts";

/** onnxruntime's contrib operators (the fused RotaryEmbedding). */
const CONTRIB_OPSET = { domain: "com.microsoft", version: 1 };

/** Norm weights as the graph multiplies them: Gemma's norms scale by (1 + w). */
function normWeight(config: ModelConfig, w: Float32Array): Float32Array {
  return config.normStyle === "gemma" ? w.map((x) => Math.fround(1 + x)) : w;
}

function norm(
  g: GraphBuilder,
  config: ModelConfig,
  x: string,
  name: string,
  w: Float32Array,
): string {
  const weight = g.initializer(name, tensorDataF32(normWeight(config, w), [w.length]));
  return g.rmsNorm(x, weight, config.rmsNormEps);
}

function linear(g: GraphBuilder, x: string, name: string, w: LinearWeights): string {
  const bias = w.bias === null
    ? undefined
    : g.initializer(`${name}.bias`, tensorDataF32(w.bias, [w.outFeatures]));
  return g.gemm(x, weightOf(g, name, w), bias);
}

/** The [out, in] weight of a linear map as an initializer. */
function weightOf(g: GraphBuilder, name: string, w: LinearWeights): string {
  return g.initializer(`${name}.weight`, tensorDataF32(w.weight, [w.outFeatures, w.inFeatures]));
}

/**
 * `residual + linear(x)`: without a bias the residual is the Gemm's C operand, which saves a
 * separate Add pass over [T, hidden].
 */
function linearPlus(
  g: GraphBuilder,
  x: string,
  name: string,
  w: LinearWeights,
  residual: string,
): string {
  if (w.bias !== null) return g.node("Add", [residual, linear(g, x, name, w)]);
  return g.gemm(x, weightOf(g, name, w), residual);
}

/**
 * Several linear maps of the same input as one Gemm over their stacked weights, split back:
 * fewer, wider products (q/k/v; gate/up), which the GEMM kernel runs closer to its peak.
 */
function linearStack(g: GraphBuilder, x: string, name: string, parts: LinearWeights[]): string[] {
  const stacked = linear(g, x, name, stackLinear(parts));
  const sizes = g.constantI64(parts.map((p) => p.outFeatures));
  return g.nodeMulti("Split", [stacked, sizes], parts.length, { axis: { int: 1 } });
}

/**
 * HF rotate_half RoPE on x [T, heads, d] with the chunk's tables cos/sin [T, d/2], as
 * onnxruntime's fused RotaryEmbedding (com.microsoft): one pass instead of eight element-wise
 * ops (q of [512, 16, 128]: 0.8 vs 1.5–2.6 ms here). Position ids in their offset form: row t
 * of the tables is token t of the chunk.
 */
function rope(
  g: GraphBuilder,
  x: string,
  tables: { cos: string; sin: string },
  shape: { heads: number; d: number },
): string {
  const { heads, d } = shape;
  const rotated = g.node(
    "RotaryEmbedding",
    [g.reshape(x, [1, -1, heads * d]), g.constantI64([0]), tables.cos, tables.sin],
    { num_heads: { int: heads }, interleaved: { int: 0 } },
    { domain: "com.microsoft" },
  );
  return g.reshape(rotated, [-1, heads, d]);
}

/** Names of the values {@linkcode addPreAttention} adds. */
export interface PreAttentionValues {
  hidden: string;
  q: string;
  k: string;
  v: string;
}

/**
 * Layer `index` up to attention: the input norm (the attention-input hidden state), q/k/v
 * projections, q/k norms and RoPE. cos and sin are [T, d/2] inputs.
 */
function addPreAttention(
  g: GraphBuilder,
  config: ModelConfig,
  w: LayerWeights,
  io: { index: number; x: string; cos: string; sin: string },
): PreAttentionValues {
  const { headDim: d, numHeads, numKvHeads } = config;
  const p = `layer${io.index}.`;
  const hidden = norm(g, config, io.x, `${p}input_norm`, w.inputNorm);
  const [qFlat, kFlat, vFlat] = linearStack(g, hidden, `${p}qkv_proj`, [w.q, w.k, w.v]);
  let q = g.reshape(qFlat, [-1, numHeads, d]);
  let k = g.reshape(kFlat, [-1, numKvHeads, d]);
  const v = g.reshape(vFlat, [-1, numKvHeads, d]);
  if (config.qkNorm) {
    q = norm(g, config, q, `${p}q_norm`, w.qNorm!);
    k = norm(g, config, k, `${p}k_norm`, w.kNorm!);
  }
  return {
    hidden,
    q: rope(g, q, io, { heads: numHeads, d }),
    k: rope(g, k, io, { heads: numKvHeads, d }),
    v,
  };
}

/** Layer `index` after attention: o_proj, the norms, the MLP and both residual adds. */
function addPostAttention(
  g: GraphBuilder,
  config: ModelConfig,
  w: LayerWeights,
  io: { index: number; x: string; attn: string },
): string {
  const p = `layer${io.index}.`;
  let mlpIn: string;
  let residual: string;
  if (config.sandwichNorms) {
    const o = linear(g, io.attn, `${p}o_proj`, w.o);
    const normed = norm(g, config, o, `${p}post_attention_norm`, w.postAttentionNorm);
    residual = g.node("Add", [io.x, normed]);
    mlpIn = norm(g, config, residual, `${p}pre_feedforward_norm`, w.preFeedforwardNorm!);
  } else {
    residual = linearPlus(g, io.attn, `${p}o_proj`, w.o, io.x);
    mlpIn = norm(g, config, residual, `${p}post_attention_norm`, w.postAttentionNorm);
  }
  const [gate, up] = linearStack(g, mlpIn, `${p}gate_up_proj`, [w.gate, w.up]);
  const act = config.activation === "silu" ? g.silu(gate) : g.geluTanh(gate);
  const mlpAct = g.node("Mul", [act, up]);
  if (!config.sandwichNorms) return linearPlus(g, mlpAct, `${p}down_proj`, w.down, residual);
  const mlp = linear(g, mlpAct, `${p}down_proj`, w.down);
  const normed = norm(g, config, mlp, `${p}post_feedforward_norm`, w.postFeedforwardNorm!);
  return g.node("Add", [residual, normed]);
}

/**
 * Step `index` of the forward pass, 0 ≤ index ≤ numLayers: the rest of layer index − 1 after
 * its attention (absent for step 0), then layer index up to its attention (absent for the
 * last step). One step per layer boundary halves the session calls of a decode step.
 *
 * Inputs: x [T, D] (the residual stream), attn [heads, T, d] (layer index − 1's attention
 * output, head-major as the attention executor gives it), cos and sin [T, d/2], proj_w [D, P].
 * Outputs: y [T, D] (the residual after layer index − 1) and hidden [T, D], q [T, heads, d],
 * the same queries head-major as q_heads [heads, T, d] (what attention reads, without a
 * transpose outside the graph), k and v [T, kvHeads, d] of layer index, the same head-major
 * as k_heads and v_heads [kvHeads, T, d] (what the store appends, one copy per head), and
 * proj [T, P] = hidden · proj_w: a linear map of the hidden state that a method asked for,
 * computed here by the layer's own threads (P = 0 when none was asked for).
 */
export function buildStepGraph(
  config: ModelConfig,
  index: number,
  layers: { before: LayerWeights | null; after: LayerWeights | null },
): Uint8Array {
  const { hiddenSize: D, headDim: d, numHeads, numKvHeads } = config;
  const g = new GraphBuilder(`step${index}`, { extraOpsets: [CONTRIB_OPSET] });
  let x = g.input("x", "float32", ["T", D]);
  if (layers.before !== null) {
    const attnByHead = g.input("attn", "float32", [numHeads, "T", d]);
    const attn = g.reshape(g.transpose(attnByHead, [1, 0, 2]), [-1, numHeads * d]);
    x = addPostAttention(g, config, layers.before, { index: index - 1, x, attn });
    g.output(x, { name: "y", dataType: "float32", shape: ["T", D] });
  }
  if (layers.after !== null) {
    const cos = g.input("cos", "float32", ["T", d / 2]);
    const sin = g.input("sin", "float32", ["T", d / 2]);
    const pre = addPreAttention(g, config, layers.after, { index, x, cos, sin });
    g.output(pre.hidden, { name: "hidden", dataType: "float32", shape: ["T", D] });
    g.output(pre.q, { name: "q", dataType: "float32", shape: ["T", numHeads, d] });
    g.output(g.transpose(pre.q, [1, 0, 2]), {
      name: "q_heads",
      dataType: "float32",
      shape: [numHeads, "T", d],
    });
    g.output(pre.k, { name: "k", dataType: "float32", shape: ["T", numKvHeads, d] });
    g.output(pre.v, { name: "v", dataType: "float32", shape: ["T", numKvHeads, d] });
    for (const [name, x] of [["k_heads", pre.k], ["v_heads", pre.v]]) {
      g.output(g.transpose(x, [1, 0, 2]), {
        name,
        dataType: "float32",
        shape: [numKvHeads, "T", d],
      });
    }
    const proj = hiddenProjectionNode(g, pre.hidden, g.input("proj_w", "float32", [D, "P"]));
    g.output(proj, { name: "proj", dataType: "float32", shape: ["T", "P"] });
  }
  return g.build();
}

/**
 * `hidden [T, D] · w [D, P]` for a projection given at run time (a method's
 * `hiddenProjection`); shared with the methods bench, which times it alone. Gemm, not MatMul:
 * with a run-time B, onnxruntime's MatMul runs this product at less than half the rate
 * ([512, 1024] · [1024, 384]: 4.1 vs 1.7 ms here).
 */
export function hiddenProjectionNode(g: GraphBuilder, hidden: string, w: string): string {
  return g.node("Gemm", [hidden, w]);
}

/** Final norm and the LM head (with optional tanh soft-capping). */
export function buildHeadGraph(
  config: ModelConfig,
  finalNorm: Float32Array,
  lmHead: Float32Array,
): Uint8Array {
  const { hiddenSize: D, vocabSize: V } = config;
  const g = new GraphBuilder("lm_head");
  const x = g.input("x", "float32", ["T", D]);
  const h = norm(g, config, x, "final_norm", finalNorm);
  let logits = g.gemm(h, g.initializer("lm_head.weight", tensorDataF32(lmHead, [V, D])));
  const cap = config.finalLogitSoftcap;
  if (cap !== null) {
    const scaled = g.node("Div", [logits, g.constantF32(cap)]);
    logits = g.node("Mul", [g.node("Tanh", [scaled]), g.constantF32(cap)]);
  }
  g.output(logits, { name: "logits", dataType: "float32", shape: ["T", V] });
  return g.build();
}
