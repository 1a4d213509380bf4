/**
 * `head`: keeps whole KV heads, ranked by a precomputed head importance (DuoAttention-style
 * head-level eviction, the `head` baseline of Fast KVzip's prefill runs, spec §5).
 *
 * Paper: Xiao et al., "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and
 * Streaming Heads", https://arxiv.org/abs/2410.10819.
 *
 * Parameters:
 * - `scores` (default "": `<model dir>/full_attention_heads.tsv`): the head-importance file, or
 *   several comma-separated (their maximum is taken per head, as Fast KVzip takes the maximum
 *   over its files). One number per (layer,
 *   KV head), in DuoAttention's `full_attention_heads.tsv` layout (one line per layer, its KV
 *   heads' values separated by tabs, spaces or commas) or as JSON (`[[…], …]`, layers × heads).
 * - `noise` (default 1e-4): each (layer, head) adds `noise · U(0, 1)`, seeded by the sweep's seed, so
 *   heads of equal importance are ranked in a fixed but arbitrary order (spec §5).
 *
 * Every entry of a head scores its head's importance, so with the default global threshold the
 * heads of highest importance are kept whole (retrieval heads) and the others keep only what the
 * selection protects: the prefix, sinks and the window (streaming heads). Scores need no tap
 * and are ratio-independent. The files are checked against the model before a sweep starts, and
 * their SHA-256 is part of the cells.
 *
 * @module
 */

import { z } from "zod";
import { shortDigest } from "../digest.ts";
import type { ModelConfig } from "../engine/types.ts";
import { InputError } from "../errors.ts";
import { gridFrom } from "./entry_scores.ts";
import { registerMethod } from "./registry.ts";
import { hashUniform } from "./score_kernels.ts";
import type { MethodDefinition } from "./types.ts";

/** The head-importance file a model directory holds by default (DuoAttention's name). */
export const DEFAULT_SCORE_FILE = "full_attention_heads.tsv";

const params = z.object({
  scores: z.string().default("").describe(
    "head-importance file(s), comma-separated: DuoAttention's TSV (a line per layer) or JSON " +
      '[layers][KV heads]; the maximum over files per head ("" = <model dir>/' +
      `${DEFAULT_SCORE_FILE})`,
  ),
  noise: z.number().min(0).default(1e-4).describe("tie-breaking noise · U(0,1) per head"),
}).strict();

/** Parameters of `head`. */
export type HeadParams = z.infer<typeof params>;

/** The files `scores` names, or the model directory's default one. */
function scoreFiles(p: HeadParams, modelDir: string): string[] {
  const named = p.scores.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return named.length > 0 ? named : [`${modelDir.replace(/\/+$/, "")}/${DEFAULT_SCORE_FILE}`];
}

/**
 * One head-importance file as [layers][KV heads]: DuoAttention's TSV (a line per layer) or
 * JSON; `expected` is the model's shape, which the file must have.
 */
export function parseHeadScores(
  path: string,
  text: string,
  expected: { layers: number; heads: number },
): number[][] {
  let rows: unknown[][];
  if (/\.json$/i.test(path)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new InputError(`${path}: not valid JSON (${(error as Error).message})`);
    }
    if (!Array.isArray(parsed) || !parsed.every(Array.isArray)) {
      throw new InputError(`${path}: expected [layers][KV heads] numbers`);
    }
    rows = parsed as unknown[][];
  } else {
    rows = text.split("\n").filter((line) => line.trim() !== "")
      .map((line) => line.trim().split(/[\s,]+/).map(Number));
  }
  const shape = `${expected.layers} layers × ${expected.heads} KV heads`;
  if (rows.length !== expected.layers) {
    throw new InputError(`${path}: ${rows.length} layers of head scores; the model has ${shape}`);
  }
  rows.forEach((row, l) => {
    if (row.length !== expected.heads) {
      throw new InputError(
        `${path}: layer ${l} has ${row.length} head scores; the model has ${shape}`,
      );
    }
    const bad = row.findIndex((x) => typeof x !== "number" || !Number.isFinite(x));
    if (bad !== -1) {
      throw new InputError(`${path}: layer ${l}, head ${bad}: expected a finite number`);
    }
  });
  return rows as number[][];
}

/** The per-head maximum over the files, and what identifies them (their SHA-256). */
async function readHeadScores(
  p: HeadParams,
  model: { dir: string; config: ModelConfig },
): Promise<{ scores: number[][]; identity: string }> {
  const expected = { layers: model.config.numLayers, heads: model.config.numKvHeads };
  let scores: number[][] | null = null;
  const digests: string[] = [];
  for (const path of scoreFiles(p, model.dir)) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      throw new InputError(`${path}: cannot read the head scores (${(error as Error).message})`);
    }
    const file = parseHeadScores(path, new TextDecoder().decode(bytes), expected);
    scores = scores === null
      ? file
      : scores.map((row, l) => row.map((x, h) => Math.max(x, file[l][h])));
    digests.push(await shortDigest(bytes));
  }
  return { scores: scores!, identity: `head scores sha256:${digests.join(",")}` };
}

/** The `head` method. */
export const head: MethodDefinition<HeadParams> = {
  id: "head",
  title: "Head-level (DuoAttention-style)",
  paper: {
    title: "DuoAttention: Efficient Long-Context LLM Inference with Retrieval and Streaming Heads",
    url: "https://arxiv.org/abs/2410.10819",
  },
  summary: "Keeps whole KV heads ranked by a precomputed head importance; the others stream.",
  params,
  signals: [],
  phases: ["prefill", "chunked-prefill"],
  ratioIndependent: true,
  policy: { policy: "global" },
  async artifacts(p, model) {
    return (await readHeadScores(p, model)).identity;
  },
  async conformanceParams(model) {
    const path = `${model.dir}/conformance_head_scores.json`;
    const { numLayers, numKvHeads } = model.config;
    const scores = Array.from(
      { length: numLayers },
      (_, l) => Array.from({ length: numKvHeads }, (_, h) => hashUniform(7, l, h)),
    );
    await Deno.writeTextFile(path, JSON.stringify(scores));
    return { scores: path };
  },
  createScorer(p, ctx) {
    let loaded: Promise<number[][]> | null = null;
    return {
      async score() {
        loaded ??= readHeadScores(p, ctx.model).then((r) => r.scores);
        const scores = await loaded;
        return gridFrom(ctx.cache, (l, h) => {
          const value = scores[l][h] + p.noise * hashUniform(ctx.seed, l, h);
          return new Float32Array(ctx.cache.lengths(l)[h]).fill(value);
        });
      },
    };
  },
};

registerMethod(head);
