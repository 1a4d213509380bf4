/**
 * ONNX graphs of one decoder layer, built from its weights. Attention itself runs in the KV
 * store between the two halves, so the graphs are:
 *
 * - `pre` (layer l):  x[T, D], cos[T, d/2], sin[T, d/2] → hidden = inputNorm(x), q, k (post-norm,
 *   post-RoPE) [T, heads, d], v [T, kvHeads, d]
 * - `post` (layer l): x[T, D], attn[T, heads·d] → x + block(attn) (o_proj, the norms and the MLP)
 * - `head`:           x[T, D] → logits[T, vocab]
 *
 * The switches between families are the named fields of {@linkcode ModelConfig}.
 *
 * @module
 */

import { GraphBuilder, tensorDataF32 } from "../kernels/onnx/graph.ts";
import type { LayerWeights, LinearWeights, ModelConfig } from "./types.ts";

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
  const weight = g.initializer(
    `${name}.weight`,
    tensorDataF32(w.weight, [w.outFeatures, w.inFeatures]),
  );
  const bias = w.bias === null
    ? undefined
    : g.initializer(`${name}.bias`, tensorDataF32(w.bias, [w.outFeatures]));
  return g.gemm(x, weight, bias);
}

/** HF rotate_half RoPE on x [T, heads, d] with cos/sin [T, 1, d/2]. */
function rope(g: GraphBuilder, x: string, cos: string, sin: string): string {
  const [x1, x2] = g.nodeMulti("Split", [x], 2, { axis: { int: -1 } });
  const r1 = g.node("Sub", [g.node("Mul", [x1, cos]), g.node("Mul", [x2, sin])]);
  const r2 = g.node("Add", [g.node("Mul", [x2, cos]), g.node("Mul", [x1, sin])]);
  return g.node("Concat", [r1, r2], { axis: { int: -1 } });
}

/** The graph from the residual stream to post-RoPE q, k and v of layer `index`. */
export function buildPreAttentionGraph(
  config: ModelConfig,
  w: LayerWeights,
  index: number,
): Uint8Array {
  const { hiddenSize: D, headDim: d, numHeads, numKvHeads } = config;
  const g = new GraphBuilder(`layer${index}_pre`);
  const x = g.input("x", "float32", ["T", D]);
  const cos = g.reshape(g.input("cos", "float32", ["T", d / 2]), [-1, 1, d / 2]);
  const sin = g.reshape(g.input("sin", "float32", ["T", d / 2]), [-1, 1, d / 2]);
  const hidden = norm(g, config, x, "input_norm", w.inputNorm);

  let q = g.reshape(linear(g, hidden, "q_proj", w.q), [-1, numHeads, d]);
  let k = g.reshape(linear(g, hidden, "k_proj", w.k), [-1, numKvHeads, d]);
  const v = g.reshape(linear(g, hidden, "v_proj", w.v), [-1, numKvHeads, d]);
  if (config.qkNorm) {
    q = norm(g, config, q, "q_norm", w.qNorm!);
    k = norm(g, config, k, "k_norm", w.kNorm!);
  }
  q = rope(g, q, cos, sin);
  k = rope(g, k, cos, sin);

  g.output(hidden, { name: "hidden", dataType: "float32", shape: ["T", D] });
  g.output(q, { name: "q", dataType: "float32", shape: ["T", numHeads, d] });
  g.output(k, { name: "k", dataType: "float32", shape: ["T", numKvHeads, d] });
  g.output(v, { name: "v", dataType: "float32", shape: ["T", numKvHeads, d] });
  return g.build();
}

/** The graph from the attention output back into the residual stream, through the MLP. */
export function buildPostAttentionGraph(
  config: ModelConfig,
  w: LayerWeights,
  index: number,
): Uint8Array {
  const { hiddenSize: D, headDim: d, numHeads } = config;
  const g = new GraphBuilder(`layer${index}_post`);
  const x = g.input("x", "float32", ["T", D]);
  const attn = g.input("attn", "float32", ["T", numHeads * d]);

  let o = linear(g, attn, "o_proj", w.o);
  let mlpIn: string;
  let residual: string;
  if (config.sandwichNorms) {
    o = norm(g, config, o, "post_attention_norm", w.postAttentionNorm);
    residual = g.node("Add", [x, o]);
    mlpIn = norm(g, config, residual, "pre_feedforward_norm", w.preFeedforwardNorm!);
  } else {
    residual = g.node("Add", [x, o]);
    mlpIn = norm(g, config, residual, "post_attention_norm", w.postAttentionNorm);
  }
  const gate = linear(g, mlpIn, "gate_proj", w.gate);
  const act = config.activation === "silu" ? g.silu(gate) : g.geluTanh(gate);
  let mlp = linear(g, g.node("Mul", [act, linear(g, mlpIn, "up_proj", w.up)]), "down_proj", w.down);
  if (config.sandwichNorms) {
    mlp = norm(g, config, mlp, "post_feedforward_norm", w.postFeedforwardNorm!);
  }
  g.output(g.node("Add", [residual, mlp]), { name: "y", dataType: "float32", shape: ["T", D] });
  return g.build();
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
