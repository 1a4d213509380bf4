/**
 * The code suite's generators.
 *
 * - `repoqa`: RepoQA's "search needle function" (as SCBench runs it: one repository, several
 *   descriptions): a repository of generated Python modules, and for each query a description
 *   of one function in words; the answer is the function's code, graded by BLEU ≥ 0.8 against
 *   the gold needle, which must also be the best match among all needles (spec §6.4).
 * - `code_completion`: LongBench LCC-style next-line completion of a long file. The file ends
 *   part-way through a renamed copy of a function earlier in the file (a common pattern in real
 *   code), so the next line is recoverable from the context; graded by edit similarity.
 *
 * @module
 */

import { z } from "zod";
import type { Query } from "../types.ts";
import { joinSentences, NOUNS, ProseHaystack } from "../haystack.ts";
import {
  chooseDepth,
  chooseDepths,
  defineGenerator,
  type GeneratorAdapter,
  LENGTH_OPTION_SHAPE,
  type LengthOptions,
} from "./common.ts";
import type { Rng } from "./rng.ts";
import { formatDescription, FunctionFactory, type PythonFunction } from "./python_functions.ts";

/** The spec's output budget for RepoQA (§6.2). */
export const REPOQA_MAX_NEW_TOKENS = 512;
/** LongBench's output budget for LCC. */
export const CODE_COMPLETION_MAX_NEW_TOKENS = 64;

/** RepoQA's instruction. */
export const REPOQA_INSTRUCTION =
  "Based on the function description and code context, please retrieve and repeat the exact described function from the code context in a code block wrapped by ```:";

/** Prose as "# " comment lines of at most twelve words. */
function commentLines(text: string): string {
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  const lines: string[] = [];
  for (let i = 0; i < words.length; i += 12) lines.push("# " + words.slice(i, i + 12).join(" "));
  return lines.join("\n");
}

/** Lays functions out as files of a repository: a header line every few functions. */
class RepoLayout {
  #rng: Rng;
  #fileStarts: number[] = [0];
  #fileNames: string[] = [];

  constructor(rng: Rng) {
    this.#rng = rng;
  }

  #fileName(): string {
    return `${this.#rng.pick(NOUNS)}/${this.#rng.pick(NOUNS)}_${
      this.#rng.pick(["utils", "ops", "core", "helpers", "tools", "math", "text", "io"])
    }.py`;
  }

  /** The source of `functions`, with the comment `comment` (may be "") at the top. */
  render(functions: readonly string[], comment: string): string {
    const docstring = commentLines(comment);
    while (this.#fileStarts[this.#fileStarts.length - 1] < functions.length) {
      this.#fileStarts.push(this.#fileStarts[this.#fileStarts.length - 1] + this.#rng.int(3, 9));
    }
    while (this.#fileNames.length < this.#fileStarts.length) this.#fileNames.push(this.#fileName());
    const parts: string[] = [];
    let file = 0;
    functions.forEach((fn, i) => {
      if (i === this.#fileStarts[file]) {
        const header = `# File: ${this.#fileNames[file]}`;
        parts.push(file === 0 && docstring !== "" ? `${header}\n${docstring}` : header);
        file++;
      }
      parts.push(fn);
    });
    if (functions.length === 0 && docstring !== "") parts.push(docstring);
    return parts.join("\n\n\n");
  }
}

/** Options of `repoqa`. */
export interface RepoQaOptions extends LengthOptions {
  /** Needle functions (queries) per repository. */
  queries: number;
}

/** `repoqa`: find a function from its description in a generated repository. */
export const repoQaGenerator: GeneratorAdapter<RepoQaOptions> = defineGenerator<RepoQaOptions>({
  name: "repoqa",
  suite: "code",
  description:
    "RepoQA-style function retrieval: repeat the function a description in words points to",
  version: 1,
  options: z.strictObject({
    ...LENGTH_OPTION_SHAPE,
    queries: z.number().int().min(1).max(50).default(4),
  }),
  plan({ rng, options }) {
    const factory = new FunctionFactory(rng.fork("functions"));
    const functions = Array.from({ length: options.queries }, () => factory.next());
    const needles = functions.map((f) => ({ name: f.name, code: f.code }));
    const depths = chooseDepths(rng.fork("depths"), options.depth, needles.length);
    const queries: Query[] = functions.map((f) => ({
      prompt: `Function Description:\n${formatDescription(f.description)}\n\n${REPOQA_INSTRUCTION}`,
      answers: [f.code],
      metric: "repoqa_score",
      maxNewTokens: REPOQA_MAX_NEW_TOKENS,
      meta: {
        funcName: f.name,
        lang: "python",
        needles,
        completion: "```python\n" + f.code + "\n```",
      },
    }));
    const distractors: PythonFunction[] = [];
    const layout = new RepoLayout(rng.fork("layout"));
    const filler = new ProseHaystack(rng.fork("filler").seed);
    return {
      instruction: REPOQA_INSTRUCTION + "\n\n",
      queries,
      meta: { depths, needles: functions.map((f) => f.name) },
      minCoarse: 0,
      build(coarse: number, fine: number) {
        while (distractors.length < coarse) distractors.push(factory.next());
        const fns = distractors.slice(0, coarse).map((f) => f.code);
        const at = needles.map((f, i) => ({
          code: f.code,
          position: Math.round(depths[i] * fns.length),
          i,
        }))
          .sort((a, b) => b.position - a.position || b.i - a.i);
        for (const n of at) fns.splice(n.position, 0, n.code);
        return {
          context: layout.render(fns, fine > 0 ? joinSentences(filler.sentences(fine)) : ""),
        };
      },
    };
  },
});

/** Options of `code_completion`. */
export type CodeCompletionOptions = LengthOptions;

/**
 * Where to cut a copied function so that its visible body lines occur earlier in `before`
 * only followed by the same next line: the number of visible body lines, or null.
 */
function cutPoint(rng: Rng, fn: PythonFunction, before: string): number | null {
  const body = fn.code.split("\n").slice(1);
  const candidates = rng.shuffle(Array.from({ length: body.length - 2 }, (_, i) => i + 2));
  const lines = before.split("\n");
  for (const visible of candidates) {
    const window = body.slice(0, visible);
    const next = body[visible];
    if (next.trim() === "") continue;
    let agree = true;
    let found = 0;
    for (let i = 0; i + window.length < lines.length; i++) {
      if (window.every((l, k) => lines[i + k] === l)) {
        found++;
        if (lines[i + window.length] !== next) agree = false;
      }
    }
    if (found > 0 && agree) return visible;
  }
  return null;
}

/** `code_completion`: the next line of a long file, recoverable from an earlier function. */
export const codeCompletionGenerator: GeneratorAdapter<CodeCompletionOptions> = defineGenerator<
  CodeCompletionOptions
>({
  name: "code_completion",
  suite: "code",
  description:
    "LCC-style next-line completion of a long Python file whose last function copies an earlier one",
  version: 1,
  options: z.strictObject(LENGTH_OPTION_SHAPE),
  plan({ rng, options }) {
    const factory = new FunctionFactory(rng.fork("functions"));
    // The source has at least 4 body lines, so there is a cut with 2+ lines seen and one to predict.
    let source = factory.next();
    while (source.code.split("\n").length < 5) source = factory.next();
    const copy = factory.rename(source);
    const depth = chooseDepth(rng.fork("depths"), options.depth);
    const cutRng = rng.fork("cut");
    const distractors: PythonFunction[] = [];
    const layout = new RepoLayout(rng.fork("layout"));
    const filler = new ProseHaystack(rng.fork("filler").seed);
    const query = (answers: string[]): Query => ({
      prompt: "Next line of code:",
      answers,
      metric: "code_line_sim",
      maxNewTokens: CODE_COMPLETION_MAX_NEW_TOKENS,
    });
    return {
      instruction: "Please complete the code given below.\n",
      // The prompt is fixed; the answer depends on where the built text allows the cut.
      queries: [query([])],
      meta: { depth, source: source.name },
      minCoarse: 0,
      build(coarse: number, fine: number) {
        while (distractors.length < coarse) distractors.push(factory.next());
        const fns = distractors.slice(0, coarse).map((f) => f.code);
        fns.splice(Math.round(depth * fns.length), 0, source.code);
        const before = layout.render(fns, fine > 0 ? joinSentences(filler.sentences(fine)) : "");
        const visible = cutPoint(cutRng.fork("cut"), copy, before);
        if (visible === null) {
          throw new Error(`code_completion: no unambiguous cut in a copy of ${source.name}`);
        }
        const lines = copy.code.split("\n");
        const nextLine = lines[1 + visible].trim();
        return {
          context: `${before}\n\n\n${lines.slice(0, 1 + visible).join("\n")}`,
          queries: [query([nextLine])],
          meta: { nextLine, visibleLines: visible },
        };
      },
    };
  },
});
