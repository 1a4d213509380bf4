/**
 * The math suite's generators: templated multi-step word problems in GSM8K's style, with
 * reference solutions in GSM8K's format (calculator annotations, "#### N"), a "The answer is N"
 * variant and a `\boxed{N}` variant.
 *
 * - `gsm_synth`: the paper's GSM8K protocol (spec §6.1) applied to generated problems: the
 *   context is every sentence of the question but the last, the query is the last sentence,
 *   and problems whose context is under 72 tokens are not used.
 * - `math_synth`: the whole problem as the context and a request for step-by-step reasoning
 *   with the final answer in `\boxed{}` (the decoding-eviction setting, spec §4.5, §6.7).
 *
 * {@linkcode splitGsmQuestion} is the paper's split and works on loaded GSM8K rows too.
 *
 * @module
 */

import { z } from "zod";
import { REASONING_INSTRUCTION } from "../types.ts";
import {
  defineGenerator,
  GENERATOR_OPTION_SHAPE,
  type GeneratorAdapter,
  type GeneratorOptions,
} from "./common.ts";
import type { Rng } from "./rng.ts";

/** The spec's output budget for gsm (§6.2). */
export const GSM_MAX_NEW_TOKENS = 512;
/** Output budget of `math_synth` (chain of thought, then the boxed answer). */
export const MATH_MAX_NEW_TOKENS = 1024;
/** The paper skips GSM8K questions whose context is shorter than this (§6.1). */
export const GSM_MIN_CONTEXT_TOKENS = 72;

/** The spec's gsm query wording (§6.2). */
export const GSM_QUERY_PREFIX =
  "Reason and answer the question. You must say the answer in the last sentence beginning with 'The answer is'. Q: ";

/** A GSM8K question split as the paper splits it. */
export interface GsmSplit {
  /** Every sentence but the last, joined back, with a final ".". */
  context: string;
  /** The last sentence (the question). */
  question: string;
}

/**
 * The paper's split of a GSM8K question (FastKVzip `load_gsm`): split on ". ", the context is
 * all parts but the last joined by ". " plus a final ".", the question is the last part.
 *
 * @example
 * ```ts
 * splitGsmQuestion("Tom has 3 cats. Each eats 2 cans. How many cans do they eat?");
 * // { context: "Tom has 3 cats. Each eats 2 cans.", question: "How many cans do they eat?" }
 * ```
 */
export function splitGsmQuestion(question: string): GsmSplit {
  const parts = question.split(". ");
  return {
    context: parts.slice(0, -1).join(". ").trim() + ".",
    question: parts[parts.length - 1].trim(),
  };
}

/** A generated word problem. */
export interface WordProblem {
  archetype: "inventory" | "shopping" | "reading" | "earnings";
  /** The statement sentences, in order. */
  statements: string[];
  /** The last sentence: the question. */
  question: string;
  answer: number;
  /** Solution lines with GSM8K calculator annotations `<<a+b=c>>`. */
  steps: string[];
}

const PEOPLE: readonly [string, "she" | "he"][] = [
  ["Mia", "she"],
  ["Leo", "he"],
  ["Ava", "she"],
  ["Noah", "he"],
  ["Zara", "she"],
  ["Omar", "he"],
  ["Lena", "she"],
  ["Ravi", "he"],
  ["Ines", "she"],
  ["Tobias", "he"],
  ["Priya", "she"],
  ["Mateo", "he"],
  ["Hana", "she"],
  ["Felix", "he"],
  ["Nadia", "she"],
  ["Jonah", "he"],
  ["Elif", "she"],
  ["Kwame", "he"],
  ["Sofia", "she"],
  ["Arjun", "he"],
  ["Maya", "she"],
  ["Lucas", "he"],
  ["Chloe", "she"],
  ["Diego", "he"],
];
const FRIENDS = ["a friend", "a neighbor", "a cousin", "a classmate", "a teammate", "a coworker"];
const COLLECTIBLES = [
  "marbles",
  "stickers",
  "seashells",
  "stamps",
  "trading cards",
  "beads",
  "coins",
  "pebbles",
  "buttons",
  "postcards",
];
const GOODS: readonly [string, number, number][] = [
  // name, min price, max price (whole dollars)
  ["notebooks", 2, 6],
  ["pens", 1, 4],
  ["apples", 1, 3],
  ["sandwiches", 4, 9],
  ["books", 8, 20],
  ["candles", 3, 12],
  ["mugs", 5, 15],
  ["plants", 6, 25],
  ["scarves", 9, 30],
  ["puzzles", 7, 18],
];
const SPENDS = [
  "groceries",
  "a new jacket",
  "bus tickets",
  "a birthday present",
  "concert tickets",
  "art supplies",
];
const WORD_MULTIPLIERS: Record<number, string> = { 2: "doubles", 3: "triples" };
const FRACTIONS: readonly [number, string][] = [[2, "half"], [3, "a third"], [4, "a quarter"]];

function calc(a: number, op: string, b: number, r: number): string {
  return `${a} ${op} ${b} = <<${a}${op}${b}=${r}>>${r}`;
}

function inventory(rng: Rng, stepsWanted: number, who: [string, "she" | "he"]): WordProblem {
  const [name, pro] = who;
  const pos = pro === "she" ? "her" : "his";
  const obj = pro === "she" ? "her" : "him";
  const Pro = pro === "she" ? "She" : "He";
  const items = rng.pick(COLLECTIBLES);
  let v = rng.int(8, 60);
  const statements = [`${name} has ${v} ${items}.`];
  const steps: string[] = [];
  for (let s = 0; s < stepsWanted; s++) {
    const kind = rng.pick(["add", "sub", "mul", "frac", "packs", "add", "sub", "packs"]);
    if (kind === "add") {
      const n = rng.int(2, 50);
      const r = v + n;
      statements.push(
        rng.chance(0.5)
          ? `${Pro} buys ${n} more ${items}.`
          : `${capital(rng.pick(FRIENDS))} gives ${obj} ${n} more ${items}.`,
      );
      steps.push(`${name} gets ${n} more, so ${pro} has ${calc(v, "+", n, r)} ${items}.`);
      v = r;
    } else if (kind === "sub" && v > 4) {
      const n = rng.int(1, Math.min(40, v - 2));
      const r = v - n;
      statements.push(
        rng.chance(0.5)
          ? `${Pro} gives ${n} ${items} to ${rng.pick(FRIENDS)}.`
          : `${Pro} loses ${n} ${items} on the way home.`,
      );
      steps.push(`${name} has ${n} fewer, so ${pro} has ${calc(v, "-", n, r)} ${items}.`);
      v = r;
    } else if (kind === "mul" && v <= 400) {
      const k = rng.pick([2, 3]);
      const r = v * k;
      statements.push(`${Pro} ${WORD_MULTIPLIERS[k]} the number of ${items} ${pro} has.`);
      steps.push(`${k === 2 ? "Doubling" : "Tripling"} gives ${calc(v, "*", k, r)} ${items}.`);
      v = r;
    } else if (kind === "frac" && FRACTIONS.some(([d]) => v % d === 0)) {
      const [d, words] = rng.pick(FRACTIONS.filter(([d]) => v % d === 0));
      const given = v / d;
      const r = v - given;
      statements.push(`${Pro} gives away ${words} of ${pos} ${items}.`);
      steps.push(
        `${capital(words)} of ${v} is ${calc(v, "/", d, given)}, so ${pro} keeps ${
          calc(v, "-", given, r)
        } ${items}.`,
      );
      v = r;
    } else {
      const packs = rng.int(2, 9);
      const each = rng.int(3, 15);
      const added = packs * each;
      const r = v + added;
      statements.push(`${Pro} buys ${packs} packs of ${items} with ${each} ${items} in each pack.`);
      steps.push(
        `The packs hold ${calc(packs, "*", each, added)} ${items}, so ${pro} has ${
          calc(v, "+", added, r)
        } ${items}.`,
      );
      v = r;
    }
  }
  return {
    archetype: "inventory",
    statements,
    question: `How many ${items} does ${name} have now?`,
    answer: v,
    steps,
  };
}

function shopping(rng: Rng, stepsWanted: number, who: [string, "she" | "he"]): WordProblem {
  const [name, pro] = who;
  const Pro = pro === "she" ? "She" : "He";
  const purchases = Math.max(2, Math.min(5, stepsWanted));
  const goods = rng.sample(GOODS, purchases);
  const lines = goods.map(([g, lo, hi]) => ({ g, q: rng.int(2, 8), p: rng.int(lo, hi) }));
  const costs = lines.map((l) => l.q * l.p);
  const total = costs.reduce((a, b) => a + b, 0);
  const coupon = rng.chance(0.5) ? rng.int(2, Math.max(2, Math.floor(total / 4))) : 0;
  const spent = total - coupon;
  const bill = (Math.floor(spent / 20) + rng.int(1, 5)) * 20;
  const statements = [`${name} goes to the store with $${bill}.`];
  const steps: string[] = [];
  lines.forEach((l, i) => {
    statements.push(`${i === 0 ? Pro : `${Pro} also`} buys ${l.q} ${l.g} for $${l.p} each.`);
    steps.push(`The ${l.g} cost ${calc(l.q, "*", l.p, costs[i])} dollars.`);
  });
  let running = costs[0];
  const sumParts: string[] = [];
  for (let i = 1; i < costs.length; i++) {
    const r = running + costs[i];
    sumParts.push(calc(running, "+", costs[i], r));
    running = r;
  }
  steps.push(`Together that is ${sumParts.join(", then ")} dollars.`);
  if (coupon > 0) {
    statements.push(`${Pro} uses a coupon that takes $${coupon} off the total.`);
    steps.push(`With the coupon ${pro} pays ${calc(total, "-", coupon, spent)} dollars.`);
  }
  const left = bill - spent;
  steps.push(`${name} has ${calc(bill, "-", spent, left)} dollars left.`);
  return {
    archetype: "shopping",
    statements,
    question: `How many dollars does ${name} have left?`,
    answer: left,
    steps,
  };
}

function reading(rng: Rng, stepsWanted: number, who: [string, "she" | "he"]): WordProblem {
  const [name, pro] = who;
  const phases = Math.max(2, Math.min(5, stepsWanted));
  const rates = Array.from({ length: phases }, () => ({ r: rng.int(5, 40), d: rng.int(2, 9) }));
  const amounts = rates.map((x) => x.r * x.d);
  const read = amounts.reduce((a, b) => a + b, 0);
  const pages = read + rng.int(10, 300);
  const statements = [`${name} is reading a book with ${pages} pages.`];
  const steps: string[] = [];
  rates.forEach((x, i) => {
    statements.push(
      i === 0
        ? `${pro === "she" ? "She" : "He"} reads ${x.r} pages a day for ${x.d} days.`
        : `Then ${pro} reads ${x.r} pages a day for ${x.d} more days.`,
    );
    steps.push(
      `At ${x.r} pages a day for ${x.d} days ${pro} reads ${
        calc(x.r, "*", x.d, amounts[i])
      } pages.`,
    );
  });
  let running = amounts[0];
  const parts: string[] = [];
  for (let i = 1; i < amounts.length; i++) {
    const r = running + amounts[i];
    parts.push(calc(running, "+", amounts[i], r));
    running = r;
  }
  steps.push(`In all ${pro} reads ${parts.join(", then ")} pages.`);
  const left = pages - read;
  steps.push(`${name} still has ${calc(pages, "-", read, left)} pages to read.`);
  return {
    archetype: "reading",
    statements,
    question: `How many pages does ${name} still have to read?`,
    answer: left,
    steps,
  };
}

function earnings(rng: Rng, stepsWanted: number, who: [string, "she" | "he"]): WordProblem {
  const [name, pro] = who;
  const Pro = pro === "she" ? "She" : "He";
  const wage = rng.int(8, 30);
  const hours = rng.int(2, 8);
  const days = rng.int(3, 12);
  const perDay = wage * hours;
  const earned = perDay * days;
  const statements = [
    `${name} earns $${wage} an hour.`,
    `${Pro} works ${hours} hours a day for ${days} days.`,
  ];
  const steps = [
    `Each day ${pro} earns ${calc(wage, "*", hours, perDay)} dollars.`,
    `Over ${days} days ${pro} earns ${calc(perDay, "*", days, earned)} dollars.`,
  ];
  let v = earned;
  const spends = Math.max(1, Math.min(4, stepsWanted - 1));
  for (let i = 0; i < spends && v > 10; i++) {
    const s = rng.int(1, Math.floor(v / 3));
    statements.push(`${Pro} spends $${s} on ${rng.pick(SPENDS)}.`);
    steps.push(`After spending ${s} dollars ${pro} has ${calc(v, "-", s, v - s)} dollars.`);
    v -= s;
  }
  if (v % 2 === 0 && rng.chance(0.5)) {
    statements.push(`${Pro} puts half of the money that is left into savings.`);
    steps.push(`Half of ${v} goes to savings, leaving ${calc(v, "/", 2, v / 2)} dollars.`);
    v /= 2;
  }
  return {
    archetype: "earnings",
    statements,
    question: `How many dollars does ${name} have left to spend?`,
    answer: v,
    steps,
  };
}

function capital(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A word problem of `steps` operations (about; each archetype clamps it to its range). */
export function wordProblem(rng: Rng, steps: number): WordProblem {
  const who = rng.pick(PEOPLE);
  const make = rng.pick([inventory, shopping, reading, earnings]);
  return make(rng, steps, who);
}

/** The question text: the statements and the question, as one paragraph. */
export function problemText(p: WordProblem): string {
  return [...p.statements, p.question].join(" ");
}

/** The reference solution in GSM8K's format, ending "#### N". */
export function gsmSolution(p: WordProblem): string {
  return `${p.steps.join("\n")}\n#### ${p.answer}`;
}

/** The solution in words (annotations removed), ending "The answer is N." */
export function answerIsSolution(p: WordProblem): string {
  return `${p.steps.map(stripAnnotations).join(" ")} The answer is ${p.answer}.`;
}

/** The solution in words, ending `\boxed{N}`. */
export function boxedSolution(p: WordProblem): string {
  return `${p.steps.map(stripAnnotations).join(" ")} The final answer is $\\boxed{${p.answer}}$.`;
}

function stripAnnotations(line: string): string {
  return line.replace(/<<[^>]*>>/g, "");
}

/** Options of the math generators. */
export interface MathOptions extends GeneratorOptions {
  /** Operations per problem: at least this many… */
  minSteps: number;
  /** …and at most this many. */
  maxSteps: number;
  /** Problems whose GSM-split context is shorter (in the tokenizer given) are redrawn. */
  minContextTokens: number;
}

const MATH_OPTION_SHAPE = {
  ...GENERATOR_OPTION_SHAPE,
  minSteps: z.number().int().min(1).max(12).default(3),
  maxSteps: z.number().int().min(1).max(12).default(6),
  minContextTokens: z.number().int().min(0).max(4096).default(GSM_MIN_CONTEXT_TOKENS),
};

/** Draw a problem whose GSM context reaches `minContextTokens`, adding steps as needed. */
function drawProblem(rng: Rng, options: MathOptions, count: (text: string) => number): WordProblem {
  if (options.minSteps > options.maxSteps) {
    throw new RangeError(`math: minSteps ${options.minSteps} exceeds maxSteps ${options.maxSteps}`);
  }
  let steps = rng.int(options.minSteps, options.maxSteps);
  for (let attempt = 0; attempt < 200; attempt++) {
    const p = wordProblem(rng, steps);
    if (count(splitGsmQuestion(problemText(p)).context) >= options.minContextTokens) return p;
    steps = Math.min(12, steps + 1);
  }
  throw new RangeError(`math: no problem reaches ${options.minContextTokens} context tokens`);
}

/** `gsm_synth`: generated GSM-style problems under the paper's GSM split. */
export const gsmSynthGenerator: GeneratorAdapter<MathOptions> = defineGenerator<MathOptions>({
  name: "gsm_synth",
  suite: "math",
  description:
    "GSM8K-style multi-step word problems, split as the paper splits GSM8K (context = all but the last sentence)",
  version: 1,
  options: z.strictObject(MATH_OPTION_SHAPE),
  plan({ rng, options, tokenizer }) {
    const p = drawProblem(
      rng,
      options,
      (t) => tokenizer.encode(t, { addSpecialTokens: false }).length,
    );
    const split = splitGsmQuestion(problemText(p));
    return {
      instruction: REASONING_INSTRUCTION,
      queries: [{
        prompt: GSM_QUERY_PREFIX + split.question,
        answers: [gsmSolution(p)],
        metric: "include_score_gsm",
        maxNewTokens: GSM_MAX_NEW_TOKENS,
        meta: {
          answer: String(p.answer),
          completion: answerIsSolution(p),
          boxed: boxedSolution(p),
        },
      }],
      meta: { archetype: p.archetype, steps: p.steps.length },
      fine: false,
      build: () => ({ context: split.context }),
    };
  },
});

/** The `math_synth` request for reasoning and a boxed answer. */
export const MATH_QUERY =
  "Solve the problem step by step: first give your chain of thought, then the final answer in the format \\boxed{}.";

/** `math_synth`: the same problems, answered with chain of thought and `\boxed{N}`. */
export const mathSynthGenerator: GeneratorAdapter<MathOptions> = defineGenerator<MathOptions>({
  name: "math_synth",
  suite: "math",
  description:
    "GSM8K-style multi-step word problems as a whole, answered with chain of thought and \\boxed{}",
  version: 1,
  options: z.strictObject(MATH_OPTION_SHAPE),
  plan({ rng, options, tokenizer }) {
    const p = drawProblem(
      rng,
      options,
      (t) => tokenizer.encode(t, { addSpecialTokens: false }).length,
    );
    return {
      instruction: "You are given a math problem.\n\n",
      queries: [{
        prompt: MATH_QUERY,
        answers: [String(p.answer)],
        metric: "math_equal",
        maxNewTokens: MATH_MAX_NEW_TOKENS,
        meta: { completion: boxedSolution(p), gsmSolution: gsmSolution(p) },
      }],
      meta: { archetype: p.archetype, steps: p.steps.length },
      fine: false,
      build: () => ({ context: `Problem: ${problemText(p)}` }),
    };
  },
});
