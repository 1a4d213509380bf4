/**
 * Multi-query key–value retrieval, after SCBench's `scbench_kv` (InfiniteBench's kv_retrieval):
 * a JSON object of UUID keys → UUID values, and several queries, each asking for one key's
 * value, all answered from the same context (the query-agnostic setting).
 *
 * @module
 */

import { z } from "zod";
import type { Query } from "../types.ts";
import { joinSentences, ProseHaystack } from "../haystack.ts";
import {
  chooseDepths,
  defineGenerator,
  type GeneratorAdapter,
  LENGTH_OPTION_SHAPE,
  type LengthOptions,
} from "./common.ts";

/** The spec's default output budget (§6.2: 96 for the sets without their own). */
export const KV_MAX_NEW_TOKENS = 96;

/** The first JSON key, holding filler prose (the fine length units; may be empty); never queried. */
export const KV_NOTE_KEY = "note";

/** Options of `kv_retrieval`. */
export interface KvOptions extends LengthOptions {
  /** Queries per context. */
  queries: number;
}

/** `kv_retrieval`: UUID → UUID JSON, several keys queried from one context. */
export const kvGenerator: GeneratorAdapter<KvOptions> = defineGenerator<KvOptions>({
  name: "kv_retrieval",
  suite: "long-context",
  description:
    "SCBench-style key-value retrieval: UUID keys to UUID values in JSON, several queries per context",
  version: 1,
  options: z.strictObject({
    ...LENGTH_OPTION_SHAPE,
    queries: z.number().int().min(1).max(100).default(4),
  }),
  plan({ rng, options }) {
    const used = new Set<string>();
    const fresh = (r: typeof rng) => {
      for (;;) {
        const id = r.uuid();
        if (!used.has(id)) {
          used.add(id);
          return id;
        }
      }
    };
    const needleRng = rng.fork("needles");
    const needles = Array.from(
      { length: options.queries },
      () => [fresh(needleRng), fresh(needleRng)] as const,
    );
    const depths = chooseDepths(rng.fork("depths"), options.depth, needles.length);
    const askOrder = rng.fork("order").shuffle(needles.map((_, i) => i));
    const queries: Query[] = askOrder.map((i) => ({
      prompt: `Key: "${needles[i][0]}"\nThe value associated with the specified key is:`,
      answers: [needles[i][1]],
      metric: "include_score",
      maxNewTokens: KV_MAX_NEW_TOKENS,
    }));
    const distractorRng = rng.fork("distractors");
    const distractors: (readonly [string, string])[] = [];
    const filler = new ProseHaystack(rng.fork("filler").seed);
    return {
      instruction:
        "Extract the value corresponding to the specified key in the JSON object below.\n\n",
      queries,
      meta: { depths },
      minCoarse: 0,
      build(coarse: number, fine: number) {
        while (distractors.length < coarse) {
          distractors.push([fresh(distractorRng), fresh(distractorRng)]);
        }
        const pairs = distractors.slice(0, coarse);
        const at = needles.map((pair, i) => ({
          pair,
          position: Math.round(depths[i] * pairs.length),
          i,
        }))
          .sort((a, b) => b.position - a.position || b.i - a.i);
        for (const n of at) pairs.splice(n.position, 0, n.pair);
        const entries = pairs.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`);
        // The note is always there, so each fine unit costs one word, not a new entry.
        const note = fine > 0 ? joinSentences(filler.sentences(fine)) : "";
        entries.unshift(`${JSON.stringify(KV_NOTE_KEY)}: ${JSON.stringify(note)}`);
        return { context: `JSON data:\n{${entries.join(", ")}}` };
      },
    };
  },
});
