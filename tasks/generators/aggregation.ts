/**
 * RULER's tracing and aggregation generators: variable tracking (`vt`), common-word extraction
 * (`cwe`) and frequent-word extraction (`fwe`).
 *
 * @module
 */

import { z } from "zod";
import {
  ADJECTIVES,
  distinctMadeUpWords,
  insertAtDepths,
  joinSentences,
  NoiseHaystack,
  NOUNS,
} from "../haystack.ts";
import {
  defineGenerator,
  type GeneratorAdapter,
  LENGTH_OPTION_SHAPE,
  type LengthOptions,
} from "./common.ts";
import { mixSeeds, Rng } from "./rng.ts";

// ---------------------------------------------------------------------------------------------
// Variable tracking

/** Options of `vt`. */
export interface VtOptions extends LengthOptions {
  /** Chains of assignments (the unqueried ones are distractors); RULER: 1. */
  chains: number;
  /** Assignments after the first in each chain; RULER: 4. */
  hops: number;
}

/** RULER's output budget for variable tracking. */
export const VT_MAX_NEW_TOKENS = 30;

function upperName(rng: Rng, used: Set<string>): string {
  for (;;) {
    let name = "";
    for (let i = 0; i < 5; i++) name += String.fromCharCode(65 + rng.int(0, 25));
    if (!used.has(name)) {
      used.add(name);
      return name;
    }
  }
}

/** `vt`: chains "VAR B = VAR A" from "VAR A = 12345" in RULER's noise; name every variable of one value. */
export const vtGenerator: GeneratorAdapter<VtOptions> = defineGenerator<VtOptions>({
  name: "vt",
  suite: "long-context",
  description:
    "RULER variable tracking: follow chains of assignments through noise and list every variable holding a value",
  version: 1,
  options: z.strictObject({
    ...LENGTH_OPTION_SHAPE,
    chains: z.number().int().min(1).max(20).default(1),
    hops: z.number().int().min(1).max(50).default(4),
  }),
  plan({ rng, options }) {
    const names = new Set<string>();
    const valuesUsed = new Set<number>();
    const chains: { vars: string[]; value: number; lines: string[] }[] = [];
    for (let c = 0; c < options.chains; c++) {
      const vars = Array.from({ length: options.hops + 1 }, () => upperName(rng, names));
      let value = rng.int(10000, 99999);
      while (valuesUsed.has(value)) value = rng.int(10000, 99999);
      valuesUsed.add(value);
      const lines = [`VAR ${vars[0]} = ${value}`];
      for (let j = 0; j < options.hops; j++) lines.push(`VAR ${vars[j + 1]} = VAR ${vars[j]}`);
      chains.push({ vars, value, lines });
    }
    // Chain lines keep their order; the chains interleave at random depths.
    const insertions = chains.flatMap((chain) => {
      const depths = Array.from({ length: chain.lines.length }, () => rng.next()).sort((a, b) =>
        a - b
      );
      return chain.lines.map((text, j) => ({ text, depth: depths[j] }));
    });
    const target = chains[0];
    const noise = new NoiseHaystack();
    return {
      instruction:
        "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n",
      queries: [{
        prompt:
          `Question: Find all variables that are assigned the value ${target.value} in the text above.`,
        answerPrefix:
          `Answer: According to the chain(s) of variable assignment in the text above, ${target.vars.length} variables are assigned the value ${target.value}, they are:`,
        answers: target.vars,
        metric: "string_match_all",
        maxNewTokens: VT_MAX_NEW_TOKENS,
      }],
      meta: { value: target.value },
      minCoarse: 0,
      fine: false,
      build(coarse: number) {
        return { context: joinSentences(insertAtDepths(noise.sentences(coarse), insertions)) };
      },
    };
  },
});

// ---------------------------------------------------------------------------------------------
// Common-word extraction

/** Options of `cwe`. */
export interface CweOptions extends LengthOptions {
  /** Common words; RULER: 10. */
  commonWords: number;
  /** Repeats of each common word; 0 (default) scales RULER's 30 down for short targets. */
  commonRepeats: number;
  /** Repeats of each uncommon word; RULER: 3. */
  uncommonRepeats: number;
}

/** RULER's output budget for common-word extraction. */
export const CWE_MAX_NEW_TOKENS = 120;

/** No chosen word may contain another (the metric tests containment). */
function pickCommon(pool: readonly string[], k: number): string[] {
  const chosen: string[] = [];
  for (const word of pool) {
    if (chosen.every((c) => !c.includes(word) && !word.includes(c))) chosen.push(word);
    if (chosen.length === k) break;
  }
  return chosen;
}

/** `cwe`: a numbered list where 10 words repeat often; name them. */
export const cweGenerator: GeneratorAdapter<CweOptions> = defineGenerator<CweOptions>({
  name: "cwe",
  suite: "long-context",
  description: "RULER common-word extraction: the 10 most frequent words of a long numbered list",
  version: 1,
  options: z.strictObject({
    ...LENGTH_OPTION_SHAPE,
    commonWords: z.number().int().min(1).max(50).default(10),
    commonRepeats: z.number().int().min(0).max(1000).default(0),
    uncommonRepeats: z.number().int().min(1).max(100).default(3),
  }),
  plan({ rng, options, tokenizer }) {
    const k = options.commonWords;
    const englishPool = rng.fork("common").shuffle([...NOUNS, ...ADJECTIVES]);
    const common = pickCommon(englishPool, k);
    const rest = englishPool.filter((w) =>
      !common.includes(w) && common.every((c) => !w.includes(c))
    );
    const extraRng = rng.fork("uncommon");
    const others: string[] = [...rest];
    const seen = new Set<string>([...common, ...rest]);
    const moreWords = (count: number) => {
      while (others.length < count) {
        for (const w of distinctMadeUpWords(extraRng, 64, [2, 3])) {
          if (!seen.has(w) && common.every((c) => !w.includes(c))) {
            seen.add(w);
            others.push(w);
          }
        }
      }
    };
    let repeats = options.commonRepeats;
    if (repeats === 0) {
      // RULER's 30 repeats fill ~40 % of a 4K list; keep that share for shorter targets.
      const item =
        tokenizer.encode(" 100. " + common.join(" 100. "), { addSpecialTokens: false }).length / k;
      const items = options.targetTokens / item;
      repeats = Math.max(options.uncommonRepeats + 2, Math.min(30, Math.floor((0.4 * items) / k)));
    }
    if (repeats <= options.uncommonRepeats) {
      throw new RangeError(
        `cwe: commonRepeats (${repeats}) must exceed uncommonRepeats (${options.uncommonRepeats})`,
      );
    }
    const order = rng.fork("order");
    return {
      instruction:
        "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.\n",
      queries: [{
        prompt: `Question: What are the ${k} most common words in the above list?`,
        answerPrefix: `Answer: The top ${k} words that appear most often in the list are:`,
        answers: common,
        metric: "string_match_all",
        maxNewTokens: CWE_MAX_NEW_TOKENS,
      }],
      meta: { commonRepeats: repeats, uncommonRepeats: options.uncommonRepeats },
      minCoarse: 0,
      build(coarse: number, fine: number) {
        moreWords(coarse + fine);
        const list: string[] = [];
        for (const w of common) for (let r = 0; r < repeats; r++) list.push(w);
        for (const w of others.slice(0, coarse)) {
          for (let r = 0; r < options.uncommonRepeats; r++) list.push(w);
        }
        // Fine units: words that appear once, which cannot change the top words.
        for (const w of others.slice(coarse, coarse + fine)) list.push(w);
        const shuffled = new Rng(mixSeeds([order.seed, coarse, fine])).shuffle(list);
        return { context: shuffled.map((w, i) => `${i + 1}. ${w}`).join(" ") };
      },
    };
  },
});

// ---------------------------------------------------------------------------------------------
// Frequent-word extraction

/** Options of `fwe`. */
export interface FweOptions extends LengthOptions {
  /** Zeta exponent of the word frequencies; RULER: 2. */
  alpha: number;
  /** Coded vocabulary size; RULER: 2000. */
  vocabSize: number;
}

/** RULER's output budget for frequent-word extraction. */
export const FWE_MAX_NEW_TOKENS = 50;

/** Riemann zeta of `s` > 1 (partial sum plus the Euler–Maclaurin tail). */
export function zeta(s: number): number {
  const n = 1000;
  let sum = 0;
  for (let k = 1; k < n; k++) sum += k ** -s;
  return sum + n ** (1 - s) / (s - 1) + 0.5 * n ** -s + (s * n ** (-s - 1)) / 12;
}

/** RULER's deterministic word counts: floor(words · k^−α / ζ(α)) for ranks k = 1 … vocab. */
export function zetaCounts(words: number, alpha: number, vocab: number): number[] {
  const z = zeta(alpha);
  return Array.from({ length: vocab }, (_, i) => Math.floor((words * (i + 1) ** -alpha) / z));
}

/** The "noise" word at rank 1 that the question says to ignore. */
export const FWE_DOTS = "....";

/** `fwe`: coded words with zeta-distributed frequencies; name the three most frequent. */
export const fweGenerator: GeneratorAdapter<FweOptions> = defineGenerator<FweOptions>({
  name: "fwe",
  suite: "long-context",
  description:
    "RULER frequent-word extraction: the 3 most frequent coded words (zeta-distributed, α = 2)",
  version: 1,
  options: z.strictObject({
    ...LENGTH_OPTION_SHAPE,
    alpha: z.number().min(1.1).max(5).default(2),
    vocabSize: z.number().int().min(10).max(100_000).default(2000),
  }),
  plan({ rng, options }) {
    const vocabRng = rng.fork("vocab");
    const seen = new Set<string>();
    const vocab: string[] = [FWE_DOTS];
    while (vocab.length < options.vocabSize) {
      let word = "";
      for (let i = 0; i < 6; i++) word += String.fromCharCode(97 + vocabRng.int(0, 25));
      if (!seen.has(word)) {
        seen.add(word);
        vocab.push(word);
      }
    }
    const answers = vocab.slice(1, 4);
    const order = rng.fork("order");
    // Below this many words the top three ranks are not strictly more frequent than the rest.
    let minWords = 10;
    for (;; minWords++) {
      const c = zetaCounts(minWords, options.alpha, 5);
      if (c[1] > c[2] && c[2] > c[3] && c[3] > c[4]) break;
    }
    return {
      instruction:
        "Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words.\n",
      queries: [{
        prompt:
          "Question: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?",
        answerPrefix:
          "Answer: According to the coded text above, the three most frequently appeared words are:",
        answers,
        metric: "string_match_all",
        maxNewTokens: FWE_MAX_NEW_TOKENS,
      }],
      meta: { alpha: options.alpha },
      minCoarse: minWords,
      // Fine units: vocabulary words the zeta counts leave out, once each, from the end.
      maxFine: Math.max(0, vocab.length - 1 - Math.ceil(Math.sqrt(options.targetTokens))),
      build(coarse: number, fine: number) {
        const counts = zetaCounts(coarse, options.alpha, vocab.length);
        // Singletons only when the third answer appears at least twice, so it still wins.
        let singletons = 0;
        for (let k = 0; k < fine && counts[3] >= 2; k++) {
          const rank = vocab.length - 1 - k;
          if (counts[rank] > 0) break;
          counts[rank] = 1;
          singletons++;
        }
        const words: string[] = [];
        counts.forEach((count, rank) => {
          for (let r = 0; r < count; r++) words.push(vocab[rank]);
        });
        const shuffled = new Rng(mixSeeds([order.seed, coarse, fine])).shuffle(words);
        return { context: shuffled.join(" "), meta: { words: coarse, singletons } };
      },
    };
  },
});
