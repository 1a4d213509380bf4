/**
 * Generated Python functions for the code tasks: small functions of fourteen kinds (counting,
 * filtering, mapping, string and number manipulation), each with random names, random
 * constants and a description in words of what it does, its input, output and procedure.
 * Within one repository every function has a distinct (kind, constants) signature, so each
 * description fits exactly one function.
 *
 * @module
 */

import { NOUNS } from "../haystack.ts";
import type { Rng } from "./rng.ts";

/** A function description in RepoQA's four parts. */
export interface FunctionDescription {
  purpose: string;
  input: string;
  output: string;
  procedure: string;
}

/** One generated function. */
export interface PythonFunction {
  name: string;
  kind: string;
  /** Kind and constants: unique within a repository. */
  signature: string;
  /** Source, from `def` to the last body line, no trailing newline. */
  code: string;
  description: FunctionDescription;
}

const POOLS = {
  xs: [
    "values",
    "items",
    "numbers",
    "data",
    "entries",
    "scores",
    "readings",
    "samples",
    "amounts",
    "weights",
    "levels",
    "series",
  ],
  x: ["v", "item", "value", "entry", "x", "num", "elem", "score", "reading", "amount"],
  acc: ["total", "result", "acc", "tally", "running", "found", "hits", "matches", "subtotal"],
  cnt: ["cnt", "count", "seen", "how_many", "n_hits"],
  out: ["out", "result_list", "collected", "output", "kept", "mapped", "bucket", "res"],
  s: ["text", "s", "line", "label", "message", "phrase", "source"],
  ch: ["ch", "c", "char", "letter", "symbol"],
  w: ["w", "word", "token", "piece", "part"],
  ws: ["words", "tokens", "pieces", "parts", "terms"],
  n: ["n", "number", "k", "steps", "size"],
  best: ["best", "largest", "top", "peak", "highest"],
} as const;

const PAIRS_AB: readonly [string, string][] = [["a", "b"], ["prev", "cur"], ["first", "second"], [
  "lo",
  "hi",
], ["p", "q"]];
const PAIRS_IJ: readonly [string, string][] = [["i", "j"], ["left", "right"], ["u", "w"], [
  "m",
  "k",
], ["r", "t"]];

const VERBS = [
  "compute",
  "collect",
  "scan",
  "gather",
  "measure",
  "build",
  "find",
  "pick",
  "merge",
  "track",
  "fold",
  "sift",
  "tally",
  "shape",
  "derive",
  "reduce",
  "select",
  "assemble",
  "inspect",
  "resolve",
  "prepare",
  "normalize",
  "summarize",
  "extract",
  "estimate",
  "rank",
  "weigh",
  "trace",
  "split",
  "filter",
];

const COMPARISONS: readonly [string, string][] = [[">", "greater than"], ["<", "less than"], [
  ">=",
  "at least",
], ["<=", "at most"]];
const MARKS = ["*", "#", "_", "-", "x", "z", "q", "@", "!", "%", "+", "~", "=", "$", "&"];

type Names = Record<keyof typeof POOLS, string>;

function pickNames(rng: Rng): Names {
  for (;;) {
    const names = {} as Names;
    for (const key of Object.keys(POOLS) as (keyof typeof POOLS)[]) {
      names[key] = rng.pick(POOLS[key]);
    }
    const all = Object.values(names);
    if (new Set(all).size === all.length) return names;
  }
}

interface Body {
  signature: string;
  params: string[];
  lines: string[];
  description: FunctionDescription;
}

type Kind = (rng: Rng, v: Names) => Body;

const LIST_IN = "A list of integers.";

/** The fourteen kinds. Each returns its body lines (indented by one level later). */
const KINDS: Record<string, Kind> = {
  count_cmp(rng, v) {
    const [op, words] = rng.pick(COMPARISONS);
    const c = rng.int(2, 999);
    return {
      signature: `count_cmp ${op} ${c}`,
      params: [v.xs],
      lines: [
        `${v.acc} = 0`,
        `for ${v.x} in ${v.xs}:`,
        `    if ${v.x} ${op} ${c}:`,
        `        ${v.acc} += 1`,
        `return ${v.acc}`,
      ],
      description: {
        purpose: `Count how many numbers in a list are ${words} ${c}.`,
        input: LIST_IN,
        output: `An integer: the number of elements that are ${words} ${c}.`,
        procedure:
          `Start a counter at zero, walk through the list, add one for every element ${words} ${c}, and return the counter.`,
      },
    };
  },
  sum_multiples(rng, v) {
    const c = rng.int(2, 60);
    return {
      signature: `sum_multiples ${c}`,
      params: [v.xs],
      lines: [
        `${v.acc} = 0`,
        `for ${v.x} in ${v.xs}:`,
        `    if ${v.x} % ${c} == 0:`,
        `        ${v.acc} += ${v.x}`,
        `return ${v.acc}`,
      ],
      description: {
        purpose: `Add up the numbers in a list that are divisible by ${c}.`,
        input: LIST_IN,
        output: `An integer: the sum of the elements divisible by ${c}.`,
        procedure:
          `Keep a running sum, check each element's remainder modulo ${c}, and add the element when the remainder is zero.`,
      },
    };
  },
  scale_shift(rng, v) {
    const a = rng.int(2, 19);
    const b = rng.int(1, 500);
    return {
      signature: `scale_shift ${a} ${b}`,
      params: [v.xs],
      lines: [
        `${v.out} = []`,
        `for ${v.x} in ${v.xs}:`,
        `    ${v.out}.append(${v.x} * ${a} + ${b})`,
        `return ${v.out}`,
      ],
      description: {
        purpose: `Transform every number of a list by multiplying it by ${a} and then adding ${b}.`,
        input: "A list of numbers.",
        output: "A new list of the same length holding the transformed numbers.",
        procedure:
          `Build a new list by appending, for each element in order, the element times ${a} plus ${b}.`,
      },
    };
  },
  clamp(rng, v) {
    const lo = rng.int(0, 100);
    const hi = lo + rng.int(5, 400);
    return {
      signature: `clamp ${lo} ${hi}`,
      params: [v.xs],
      lines: [
        `${v.out} = []`,
        `for ${v.x} in ${v.xs}:`,
        `    if ${v.x} < ${lo}:`,
        `        ${v.out}.append(${lo})`,
        `    elif ${v.x} > ${hi}:`,
        `        ${v.out}.append(${hi})`,
        `    else:`,
        `        ${v.out}.append(${v.x})`,
        `return ${v.out}`,
      ],
      description: {
        purpose: `Limit every number of a list to the range from ${lo} to ${hi}.`,
        input: "A list of numbers.",
        output:
          `A new list where values below ${lo} become ${lo} and values above ${hi} become ${hi}.`,
        procedure:
          "Walk through the list and append each value, replaced by the nearest bound when it falls outside the range.",
      },
    };
  },
  char_count(rng, v) {
    const letter = String.fromCharCode(97 + rng.int(0, 25));
    const fold = rng.chance(0.5);
    return {
      signature: `char_count ${letter} ${fold}`,
      params: [v.s],
      lines: [
        `${v.acc} = 0`,
        `for ${v.ch} in ${v.s}:`,
        `    if ${v.ch}${fold ? ".lower()" : ""} == '${letter}':`,
        `        ${v.acc} += 1`,
        `return ${v.acc}`,
      ],
      description: {
        purpose: `Count how many times the letter '${letter}' appears in a string${
          fold ? ", ignoring case" : ", matching case exactly"
        }.`,
        input: "A string.",
        output: "An integer count.",
        procedure: `Look at each character${
          fold ? " in lower case" : ""
        } and count the ones equal to '${letter}'.`,
      },
    };
  },
  long_words(rng, v) {
    const n = rng.int(2, 15);
    return {
      signature: `long_words ${n}`,
      params: [v.s],
      lines: [
        `${v.out} = []`,
        `for ${v.w} in ${v.s}.split(' '):`,
        `    if len(${v.w}) > ${n}:`,
        `        ${v.out}.append(${v.w})`,
        `return ${v.out}`,
      ],
      description: {
        purpose: `Collect the words of a sentence that are longer than ${n} characters.`,
        input: "A sentence as a string of words separated by spaces.",
        output: `A list of the words with more than ${n} characters, in their original order.`,
        procedure: `Split the sentence on spaces and keep each word whose length exceeds ${n}.`,
      },
    };
  },
  digit_sum(rng, v) {
    const k = rng.int(2, 99);
    return {
      signature: `digit_sum ${k}`,
      params: [v.n],
      lines: [
        `${v.acc} = 0`,
        `while ${v.n} > 0:`,
        `    ${v.acc} += ${v.n} % 10`,
        `    ${v.n} //= 10`,
        `return ${v.acc} * ${k}`,
      ],
      description: {
        purpose:
          `Compute the sum of the decimal digits of a non-negative integer, multiplied by ${k}.`,
        input: "A non-negative integer.",
        output: `An integer: ${k} times the digit sum.`,
        procedure:
          `Repeatedly take the last digit with a remainder by ten, add it to a total and drop it by integer division; finally multiply the total by ${k}.`,
      },
    };
  },
  recurrence(rng, v) {
    const p = rng.int(1, 12);
    const q = rng.int(1, 12);
    const [a, b] = rng.pick(PAIRS_AB);
    return {
      signature: `recurrence ${p} ${q}`,
      params: [v.n],
      lines: [
        `${a}, ${b} = 0, 1`,
        `for _ in range(${v.n}):`,
        `    ${a}, ${b} = ${b}, ${p} * ${b} + ${q} * ${a}`,
        `return ${a}`,
      ],
      description: {
        purpose:
          `Return the n-th term of the sequence that starts with 0 and 1, where each next term is ${p} times the previous term plus ${q} times the one before it.`,
        input: "A non-negative integer n.",
        output: "An integer: the n-th term, counting from zero.",
        procedure:
          "Keep the last two terms, advance them n times with the recurrence, and return the older one.",
      },
    };
  },
  pair_sum(rng, v) {
    const t = rng.int(5, 400);
    const [i, j] = rng.pick(PAIRS_IJ);
    return {
      signature: `pair_sum ${t}`,
      params: [v.xs],
      lines: [
        `${v.acc} = 0`,
        `for ${i} in range(len(${v.xs})):`,
        `    for ${j} in range(${i} + 1, len(${v.xs})):`,
        `        if ${v.xs}[${i}] + ${v.xs}[${j}] == ${t}:`,
        `            ${v.acc} += 1`,
        `return ${v.acc}`,
      ],
      description: {
        purpose: `Count the pairs of distinct positions in a list whose values add up to ${t}.`,
        input: LIST_IN,
        output: "An integer: the number of such pairs.",
        procedure:
          `Compare every element with each element after it and count the pairs whose sum is exactly ${t}.`,
      },
    };
  },
  capped_running(rng, v) {
    const limit = rng.int(10, 900);
    return {
      signature: `capped_running ${limit}`,
      params: [v.xs],
      lines: [
        `${v.out} = []`,
        `${v.acc} = 0`,
        `for ${v.x} in ${v.xs}:`,
        `    ${v.acc} += ${v.x}`,
        `    if ${v.acc} > ${limit}:`,
        `        ${v.acc} = 0`,
        `    ${v.out}.append(${v.acc})`,
        `return ${v.out}`,
      ],
      description: {
        purpose:
          `Compute the running totals of a list, restarting the total from zero whenever it exceeds ${limit}.`,
        input: LIST_IN,
        output: "A list of running totals, one per element.",
        procedure:
          `Add each element to a running total, reset the total to zero when it goes above ${limit}, and record the total after every element.`,
      },
    };
  },
  length_histogram(rng, v) {
    const n = rng.int(1, 12);
    return {
      signature: `length_histogram ${n}`,
      params: [v.ws],
      lines: [
        `${v.out} = {}`,
        `for ${v.w} in ${v.ws}:`,
        `    if len(${v.w}) >= ${n}:`,
        `        ${v.out}[len(${v.w})] = ${v.out}.get(len(${v.w}), 0) + 1`,
        `return ${v.out}`,
      ],
      description: {
        purpose:
          `Count the words of a list by their length, ignoring words shorter than ${n} characters.`,
        input: "A list of words.",
        output: "A dictionary mapping each word length to how many words have that length.",
        procedure:
          `For each word with at least ${n} characters, increase the dictionary entry for its length by one.`,
      },
    };
  },
  replace_vowels(rng, v) {
    const mark = rng.pick(MARKS);
    return {
      signature: `replace_vowels ${mark}`,
      params: [v.s],
      lines: [
        `${v.out} = ''`,
        `for ${v.ch} in ${v.s}:`,
        `    if ${v.ch} in 'aeiou':`,
        `        ${v.out} += '${mark}'`,
        `    else:`,
        `        ${v.out} += ${v.ch}`,
        `return ${v.out}`,
      ],
      description: {
        purpose: `Replace every lowercase vowel of a string with the character '${mark}'.`,
        input: "A string.",
        output: "A new string of the same length.",
        procedure:
          `Build the result character by character, writing '${mark}' in place of each of a, e, i, o and u.`,
      },
    };
  },
  max_mod(rng, v) {
    const m = rng.int(3, 300);
    return {
      signature: `max_mod ${m}`,
      params: [v.xs],
      lines: [
        `${v.best} = 0`,
        `for ${v.x} in ${v.xs}:`,
        `    if ${v.x} % ${m} > ${v.best}:`,
        `        ${v.best} = ${v.x} % ${m}`,
        `return ${v.best}`,
      ],
      description: {
        purpose: `Find the largest remainder left when each number of a list is divided by ${m}.`,
        input: "A list of non-negative integers.",
        output: `An integer between 0 and ${m - 1}.`,
        procedure:
          `Track the best remainder seen so far, updating it whenever an element modulo ${m} is larger.`,
      },
    };
  },
  mean_above(rng, v) {
    const c = rng.int(0, 999);
    return {
      signature: `mean_above ${c}`,
      params: [v.xs],
      lines: [
        `${v.acc} = 0`,
        `${v.cnt} = 0`,
        `for ${v.x} in ${v.xs}:`,
        `    if ${v.x} > ${c}:`,
        `        ${v.acc} += ${v.x}`,
        `        ${v.cnt} += 1`,
        `if ${v.cnt} == 0:`,
        `    return 0`,
        `return ${v.acc} / ${v.cnt}`,
      ],
      description: {
        purpose:
          `Compute the average of the numbers in a list that are greater than ${c}, or 0 when there are none.`,
        input: "A list of numbers.",
        output: "A number: the mean of the selected elements, or 0.",
        procedure:
          `Sum and count the elements above ${c}; return 0 if none were found, otherwise the sum divided by the count.`,
      },
    };
  },
};

/** The kinds' names. */
export const FUNCTION_KINDS: readonly string[] = Object.keys(KINDS);

/** Draws functions with unique names and signatures for one repository. */
export class FunctionFactory {
  #rng: Rng;
  #names = new Set<string>();
  #signatures = new Set<string>();

  constructor(rng: Rng) {
    this.#rng = rng;
  }

  #name(): string {
    for (;;) {
      const name = `${this.#rng.pick(VERBS)}_${this.#rng.pick(NOUNS)}_${this.#rng.pick(NOUNS)}`;
      if (!this.#names.has(name)) {
        this.#names.add(name);
        return name;
      }
    }
  }

  /** A new function whose signature no earlier function of this factory has. */
  next(): PythonFunction {
    for (let attempt = 0; attempt < 10_000; attempt++) {
      const kind = this.#rng.pick(FUNCTION_KINDS);
      const body = KINDS[kind](this.#rng, pickNames(this.#rng));
      if (this.#signatures.has(body.signature)) continue;
      this.#signatures.add(body.signature);
      const name = this.#name();
      const code = [`def ${name}(${body.params.join(", ")}):`, ...body.lines.map((l) => "    " + l)]
        .join("\n");
      return { name, kind, signature: body.signature, code, description: body.description };
    }
    throw new RangeError("FunctionFactory: ran out of distinct function signatures");
  }

  /** A copy of `fn` under a new name (the code-completion task's near-duplicate). */
  rename(fn: PythonFunction): PythonFunction {
    const name = this.#name();
    return { ...fn, name, code: fn.code.replace(`def ${fn.name}(`, `def ${name}(`) };
  }
}

/** The description as RepoQA writes it. */
export function formatDescription(d: FunctionDescription): string {
  return `1. **Purpose**: ${d.purpose}\n2. **Input**: ${d.input}\n3. **Output**: ${d.output}\n4. **Procedure**: ${d.procedure}`;
}
