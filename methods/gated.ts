/**
 * `gated`: Fast KVzip. A small learned gate per layer scores every (token, KV head) from the
 * layer's attention-input hidden state once, when the token is forwarded; no attention, no
 * extra passes. Scores are ratio-independent; selection is one global threshold over all
 * layers and heads (spec §3.4 `pair`).
 *
 * Paper: Kim, Han, Yun, "Fast KVzip: Efficient and Accurate LLM Inference with Gated KV
 * Eviction", https://arxiv.org/abs/2601.17668 (spec §1 gate, §3 prefill, §4 decode).
 *
 * Parameters:
 * - `gates` (""): the gates.safetensors file; "" = `<model dir>/gates.safetensors`. Make one
 *   with `deno task train-gate` or convert an official checkpoint with `convert-gate`.
 * - `buffer` (128): decoded tokens are buffered and scored in batches of this many (spec §4.3's
 *   decode buffer). Prefill chunks are batched up to {@linkcode PREFILL_GATE_ROWS} rows per gate
 *   call. Every token is scored exactly once either way, and everything pending is scored
 *   before any scores are read.
 * - `allowOtherModel` (false): use gates trained for another checkpoint of the same shape (to
 *   study gate transfer, e.g. a base model's gates on its fine-tune). Without it, a file whose
 *   `model_fingerprint` is not the model's own is refused; files without one (converted
 *   official gates, older files) are accepted.
 *
 * Phases: prefill, chunked prefill (spec §3.3: chunks of 16 000, lagging window 4096 or 2 % of
 * short contexts, ratio r′ — the phases' defaults) and decode (spec §4.3: global budget B·L·H,
 * first 4 positions and the last 128 entries per head protected, triggers every 128 tokens).
 * Gemma3: gates and eviction cover the global layers only (spec §1.6).
 *
 * @module
 */

import { z } from "zod";
import { InputError } from "../errors.ts";
import { shortDigest } from "../digest.ts";
import type { LayerTap } from "../engine/model.ts";
import { joinPath } from "../engine/safetensors.ts";
import type { ModelConfig } from "../engine/types.ts";
import { EntryScores } from "./entry_scores.ts";
import { gateDimsFor, gatedLayers, GateScorer, type GateSet, randomGates } from "./gates/gate.ts";
import {
  checkGatesFitModel,
  checkGatesTrainedFor,
  DEFAULT_GATE_FILE,
  readGateFile,
  writeGateFile,
} from "./gates/gate_file.ts";
import { registerMethod } from "./registry.ts";
import type { MethodDefinition } from "./types.ts";

const params = z.object({
  gates: z.string().default("").describe(
    'gates.safetensors file ("" = <model dir>/gates.safetensors)',
  ),
  buffer: z.number().int().positive().default(128).describe(
    "decoded tokens scored per gate call (spec §4.3 decode buffer)",
  ),
  allowOtherModel: z.boolean().default(false).describe(
    "use gates trained for another checkpoint of the same shape (gate transfer studies)",
  ),
}).strict();

/**
 * Rows per gate call when whole prefill chunks arrive: the gate head's cost per row falls with
 * the batch (Qwen3-0.6B shape: 1.25 µs per row at 512 rows, 1.06 at 2048), and pending rows
 * cost only [rows, H·G·d + H·d] floats per layer until scored.
 */
export const PREFILL_GATE_ROWS = 2048;

/** Parameters of `gated`. */
export type GatedParams = z.infer<typeof params>;

interface LoadedGates {
  dims: GateSet["dims"];
  layers: number[];
  /** The file's `__metadata__` (its model_fingerprint, when it has one). */
  metadata: Record<string, string>;
  scorer: GateScorer;
}

/**
 * Gate sessions by file version (see {@linkcode gatesFor}), shared by every sample (building
 * sessions is the slow part).
 */
const loaded = new Map<string, Promise<LoadedGates>>();

async function loadGates(path: string): Promise<LoadedGates> {
  try {
    await Deno.stat(path);
  } catch {
    throw new InputError(
      `method gated: no gate file at ${path} (train one with train-gate, convert one with convert-gate, or pass gates=<file>)`,
    );
  }
  const { gates, metadata } = await readGateFile(path);
  return {
    dims: gates.dims,
    layers: gates.layers.map((w) => w.layer),
    metadata,
    // Half the cores: one gate call is a small GEMM (0.4 GFLOP for 512 tokens of a 0.6B
    // model) run between the forward's own sessions, where waking more threads costs more
    // than it saves (on 2 cores, 1 thread: 3.3 ms median and 4.3 ms p90 per call, against
    // 3.6 and 7.4 ms with 2).
    scorer: await GateScorer.create(gates, {
      threads: 1,
    }),
  };
}

/**
 * The gates at `path`, checked against the model (its shape, and unless `allowOtherModel` the
 * checkpoint they were trained for): loaded once per version of the file (its path, size and
 * modification time), so gates retrained in place are read again.
 */
async function gatesFor(
  path: string,
  model: { dir: string; config: ModelConfig },
  allowOtherModel: boolean,
): Promise<GateScorer> {
  const info = await Deno.stat(path).catch(() => null);
  const key = `${path}\u0000${info?.size}\u0000${info?.mtime?.getTime()}`;
  let pending = loaded.get(key);
  if (pending === undefined) {
    pending = loadGates(path);
    loaded.set(key, pending);
    pending.catch(() => loaded.delete(key));
  }
  const gates = await pending;
  checkGatesFitModel(gates, { config: model.config, gateLabel: path, modelLabel: model.dir });
  // Reads 64 KiB per weight file, once per sample: nothing beside the sample's prefill.
  await checkGatesTrainedFor(gates.metadata, model.dir, { gateLabel: path, allowOtherModel });
  return gates.scorer;
}

/**
 * Release every cached gate session (tests; a long-lived process switching gate files).
 *
 * @example
 * ```ts
 * await releaseGatedSessions();
 * ```
 */
export async function releaseGatedSessions(): Promise<void> {
  const all = [...loaded.values()];
  loaded.clear();
  for (const p of all) {
    try {
      await (await p).scorer.release();
    } catch {
      // A load that failed has nothing to release.
    }
  }
}

/** Hidden rows waiting to be scored, per layer. */
interface Pending {
  rows: Float32Array[];
  positions: Int32Array[];
  tokens: number;
}

/** The `gated` method (Fast KVzip). */
export const gated: MethodDefinition<GatedParams> = {
  id: "gated",
  title: "Fast KVzip",
  paper: {
    title: "Fast KVzip: Efficient and Accurate LLM Inference with Gated KV Eviction",
    url: "https://arxiv.org/abs/2601.17668",
  },
  summary: "A learned per-layer gate scores each entry from its hidden state, once.",
  params,
  signals: ["hidden"],
  phases: ["prefill", "chunked-prefill", "decode"],
  ratioIndependent: true,
  policy: { policy: "global" },
  decode: { window: 128, policy: { policy: "global" } },
  /** The conformance suite's random test models get random gates of their shape. */
  async conformanceParams(model) {
    const path = joinPath(model.dir, "conformance_gates.safetensors");
    const { config } = model;
    await writeGateFile(
      path,
      randomGates(gateDimsFor(config), { layers: gatedLayers(config), seed: 0 }),
    );
    return { gates: path };
  },
  /**
   * The gate file must exist, fit the model and (unless `allowOtherModel`) have been trained
   * for it; it is identified by its SHA-256.
   */
  async artifacts(p, model) {
    const path = p.gates === "" ? joinPath(model.dir, DEFAULT_GATE_FILE) : p.gates;
    await gatesFor(path, model, p.allowOtherModel);
    return `gates sha256:${await shortDigest(await Deno.readFile(path))}`;
  },
  createScorer(p, ctx) {
    const path = p.gates === "" ? joinPath(ctx.model.dir, DEFAULT_GATE_FILE) : p.gates;
    const { numLayers, numKvHeads: H } = ctx.cache.shape;
    const stored = new EntryScores(numLayers, H);
    // Rows waiting to be scored, per layer: the gate's projections when the forward computed
    // them in the layer's graph (CPU), else the hidden states (WebGPU taps).
    const pending = { projected: new Map<number, Pending>(), hidden: new Map<number, Pending>() };
    let scorer: GateScorer | null = null;
    const load = async () =>
      scorer ??= await gatesFor(
        path,
        { dir: ctx.model.dir, config: ctx.config },
        p.allowOtherModel,
      );

    const scoreRows = async (
      kind: keyof typeof pending,
      layer: number,
      rows: Float32Array,
      positions: Int32Array,
    ) => {
      const T = positions.length;
      const scores = kind === "projected"
        ? await scorer!.scoreProjected(layer, rows)
        : await scorer!.score(layer, rows); // [H, T]
      for (let h = 0; h < H; h++) {
        stored.put(layer, h, positions, scores.subarray(h * T, (h + 1) * T));
      }
    };

    const flush = async (kind: keyof typeof pending, layer: number): Promise<void> => {
      const buf = pending[kind].get(layer);
      if (buf === undefined || buf.tokens === 0) return;
      const width = buf.rows[0].length / buf.positions[0].length;
      const rows = new Float32Array(buf.tokens * width);
      const positions = new Int32Array(buf.tokens);
      let at = 0;
      buf.rows.forEach((part, i) => {
        rows.set(part, at * width);
        positions.set(buf.positions[i], at);
        at += buf.positions[i].length;
      });
      pending[kind].set(layer, { rows: [], positions: [], tokens: 0 });
      await scoreRows(kind, layer, rows, positions);
    };

    return {
      async hiddenProjection(layer: number) {
        const gates = await load();
        return gates.has(layer) ? await gates.projection(layer) : undefined;
      },
      async observe(tap: LayerTap) {
        const gates = await load();
        if (!gates.has(tap.layer)) return;
        const kind = tap.projected === undefined ? "hidden" : "projected";
        const rows = tap.projected ?? tap.hidden;
        const buf = pending[kind].get(tap.layer) ?? { rows: [], positions: [], tokens: 0 };
        pending[kind].set(tap.layer, buf);
        // Decoded tokens are scored every `buffer` tokens; prefill chunks in batches of
        // PREFILL_GATE_ROWS rows.
        const batch = tap.positions.length >= p.buffer
          ? Math.max(p.buffer, PREFILL_GATE_ROWS)
          : p.buffer;
        // A whole batch with nothing pending: score the tap's own rows, no copies.
        if (buf.tokens === 0 && tap.positions.length >= batch) {
          await scoreRows(kind, tap.layer, rows, tap.positions);
          return;
        }
        // Taps hand over views valid for this forward only: copy.
        buf.rows.push(rows.slice());
        buf.positions.push(tap.positions.slice());
        buf.tokens += tap.positions.length;
        if (buf.tokens >= batch) await flush(kind, tap.layer);
      },
      async score() {
        for (const kind of ["projected", "hidden"] as const) {
          for (const layer of pending[kind].keys()) await flush(kind, layer);
        }
        return stored.aligned(ctx.cache);
      },
    };
  },
};

registerMethod(gated);
