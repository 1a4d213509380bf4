/**
 * RepoQA's "search needle function" score as SCBench/FastKVzip compute it
 * (`prefill/results/repo_qa_utils.py`, from evalplus/repoqa `compute_score.py`):
 *
 * 1. `sanitize_output`: strip the prediction; take every fenced block matching
 *    `^```(?:\w+)?\s*\n(.*?)(?=^```)```` (dot-all, multi-line). No block → the whole stripped
 *    prediction. Otherwise the first function definition tree-sitter finds in the blocks, in
 *    order; none → the first block.
 * 2. BLEU (nltk `sentence_bleu`, smoothing method 4) of the whitespace tokens
 *    (`re.split(r"\s+", s.strip())`) against every needle function of the repository.
 * 3. Correct iff the best-scoring needle (strictly greater wins, so the first of equals) is the
 *    gold function and its BLEU ≥ 0.8 (pass@1 at threshold 0.8; one sample per question).
 *
 * **Difference from the original:** tree-sitter is out of reach, so step 1 finds the first
 * function with {@linkcode extractFirstFunction}, a regex-and-brackets heuristic per language
 * that targets the same node types as RepoQA's queries (python `function_definition`, java
 * `method_declaration`, typescript `function_declaration`, rust `function_item`, go
 * `function_declaration`, cpp `function_definition` with a plain identifier name). Where it and
 * tree-sitter disagree on the span (decorators, comments after the body, odd formatting), the
 * BLEU differs slightly. Also, FastKVzip leaves empty predictions out of the pass@1 average;
 * here they score 0 like every other empty prediction.
 *
 * @module
 */

import { InputError } from "../../errors.ts";
import { sentenceBleu } from "./bleu.ts";
import { PY_WORD_CLASS, PY_WS_CLASS, pyStrip } from "./py_text.ts";
import { prepareScbenchPrediction } from "./scbench.ts";
import type { Metric, MetricContext } from "./types.ts";

/** One needle function of a repository. */
export interface Needle {
  /** The function's name (RepoQA's `func_name`). */
  name: string;
  /** The function's source. */
  code: string;
}

/** RepoQA's pass threshold on BLEU. */
export const REPOQA_THRESHOLD = 0.8;

// `^` under Python's MULTILINE matches only after "\n" (JavaScript's also after "\r", U+2028…).
const LINE_START = "(?:^|(?<=\\n))";
const CODE_BLOCK = new RegExp(
  `${LINE_START}\`\`\`(?:[${PY_WORD_CLASS}]+)?[${PY_WS_CLASS}]*\\n(.*?)(?=${LINE_START}\`\`\`)\`\`\``,
  "gsu",
);
const WHITESPACE_RUN = new RegExp(`[${PY_WS_CLASS}]+`, "u");

/** The fenced code blocks `sanitize_output` finds, in order. */
export function codeBlocks(prediction: string): string[] {
  return [...pyStrip(prediction).matchAll(CODE_BLOCK)].map((m) => m[1]);
}

/**
 * RepoQA's `sanitize_output`, with {@linkcode extractFirstFunction} standing in for tree-sitter.
 * Pass `extract: false` to skip function extraction (what the original does when tree-sitter
 * finds no function).
 */
export function sanitizeOutput(
  prediction: string,
  lang: string,
  options: { extract?: boolean } = {},
): string {
  const stripped = pyStrip(prediction);
  const blocks = codeBlocks(stripped);
  if (blocks.length === 0) return stripped;
  if (options.extract ?? true) {
    for (const block of blocks) {
      const fn = extractFirstFunction(block, lang);
      if (fn !== null) return fn;
    }
  }
  return blocks[0];
}

/** RepoQA's `compute_function_similarity`: BLEU over whitespace tokens. */
export function functionSimilarity(candidate: string, reference: string): number {
  return sentenceBleu(
    pyStrip(reference).split(WHITESPACE_RUN),
    pyStrip(candidate).split(WHITESPACE_RUN),
  );
}

/** The verdict of RepoQA's `needle_evaluator`. */
export interface NeedleVerdict {
  /** Name of the best-matching needle, null when every similarity is 0. */
  bestTarget: string | null;
  /** Its BLEU. */
  bestSimilarity: number;
  /** Best target is the gold function and its BLEU ≥ 0.8. */
  pass: boolean;
}

/** What {@linkcode evaluateNeedle} compares a prediction with. */
export interface NeedleOptions {
  /** Name of the gold needle. */
  goldName: string;
  /** Every needle function of the repository. */
  needles: readonly Needle[];
  /** RepoQA language of the repository ("python", "java", …). */
  lang: string;
  /** Extract the first function from the code blocks (default true). */
  extract?: boolean;
}

/** RepoQA's `needle_evaluator` plus the pass@1 threshold. */
export function evaluateNeedle(prediction: string, options: NeedleOptions): NeedleVerdict {
  const { goldName, needles, lang } = options;
  const sanitized = sanitizeOutput(prediction, lang, { extract: options.extract });
  let bestTarget: string | null = null;
  let bestSimilarity = 0;
  for (const needle of needles) {
    const similarity = functionSimilarity(sanitized, needle.code);
    if (similarity > bestSimilarity) {
      bestSimilarity = similarity;
      bestTarget = needle.name;
    }
  }
  return {
    bestTarget,
    bestSimilarity,
    pass: bestTarget === goldName && bestSimilarity >= REPOQA_THRESHOLD,
  };
}

function needlesOf(meta: Readonly<Record<string, unknown>> | undefined): Needle[] | null {
  const needles = meta?.needles;
  if (needles === undefined) return null;
  if (
    !Array.isArray(needles) ||
    !needles.every((n) => typeof n?.name === "string" && typeof n?.code === "string")
  ) {
    throw new InputError("repoqa_score: query meta.needles must be a list of {name, code}");
  }
  return needles;
}

/**
 * `repoqa_score`: 1 when the prediction's function is closest to the gold needle with BLEU ≥ 0.8.
 * Reads `meta.funcName` (gold name), `meta.needles` (every needle of the repository; absent →
 * the gold function alone) and `meta.lang`; `answers[0]` is the gold function.
 */
export const repoqaScoreMetric: Metric = {
  name: "repoqa_score",
  source: "repoqa",
  description: "best-BLEU needle is the gold function and BLEU ≥ 0.8 (RepoQA pass@1, SCBench)",
  score(prediction: string, answers: readonly string[], context?: MetricContext): number {
    if (answers.length === 0) throw new InputError("repoqa_score: the query has no gold function");
    const meta = context?.meta;
    const needles = needlesOf(meta);
    if (needles !== null && typeof meta?.funcName !== "string") {
      throw new InputError("repoqa_score: query meta.funcName (the gold needle's name) is missing");
    }
    const goldName = typeof meta?.funcName === "string" ? meta.funcName : "gold";
    const lang = typeof meta?.lang === "string" ? meta.lang : "";
    const pred = prepareScbenchPrediction(prediction);
    if (pred === null) return 0;
    const candidates = needles ?? [{ name: goldName, code: answers[0] }];
    return evaluateNeedle(pred, { goldName, needles: candidates, lang }).pass ? 1 : 0;
  },
};

// ---------------------------------------------------------------------------------------------
// First function definition, per language (the tree-sitter stand-in).

const ID = `[\\p{L}_$][\\p{L}\\p{N}_$]*`;

const PYTHON_DEF = new RegExp(`^([ \\t]*)((?:async[ \\t]+)?def[ \\t]+${ID}[ \\t]*\\()`, "gmu");

const BRACE_DEFS: Record<string, RegExp> = {
  go: new RegExp(`^()(func[ \\t]+${ID}[ \\t]*[\\[(])`, "gmu"),
  rust: new RegExp(
    `^([ \\t]*)((?:pub(?:[ \\t]*\\([^)\\n]*\\))?[ \\t]+)?(?:(?:const|async|unsafe|default)[ \\t]+)*` +
      `(?:extern[ \\t]+(?:"[^"\\n]*"[ \\t]+)?)?fn[ \\t]+${ID}[ \\t]*[<(])`,
    "gmu",
  ),
  typescript: new RegExp(
    `^([ \\t]*(?:export[ \\t]+(?:default[ \\t]+)?)?(?:declare[ \\t]+)?)` +
      `((?:async[ \\t]+)?function[ \\t]*\\*?[ \\t]*${ID}[ \\t]*[<(])`,
    "gmu",
  ),
  java: new RegExp(
    `^([ \\t]*)((?:@${ID}(?:\\.${ID})*(?:\\([^)\\n]*\\))?\\s+)*` +
      `(?:(?:public|protected|private|static|final|abstract|synchronized|native|strictfp|default)` +
      `[ \\t]+)*(?:<[^>\\n]*>[ \\t]+)?${ID}(?:[ \\t]*(?:<[^()\\n]*>|\\[\\]|\\.${ID}))*` +
      `[ \\t]+${ID}[ \\t]*\\()`,
    "gmu",
  ),
  cpp: new RegExp(
    `^([ \\t]*)((?:(?:static|inline|constexpr|extern|virtual|explicit|friend|template[ \\t]*<[^>\\n]*>)` +
      `\\s+)*(?:const[ \\t]+)?[\\p{L}_][\\p{L}\\p{N}_:]*(?:[ \\t]*<[^()\\n]*>)?` +
      `(?:[ \\t]+(?:const|unsigned|signed|long|short)\\b)*[ \\t]+[\\p{L}_][\\p{L}\\p{N}_]*[ \\t]*\\()`,
    "gmu",
  ),
};

const NOT_A_TYPE = new Set([
  "return",
  "new",
  "throw",
  "else",
  "case",
  "delete",
  "goto",
  "if",
  "while",
  "for",
  "switch",
  "catch",
  "do",
  "using",
  "typedef",
]);

/**
 * The first function definition in `code` for RepoQA's languages (python, java, typescript,
 * rust, cpp, go), or null: a regex finds the header, brackets (outside strings and comments)
 * or, for Python, indentation (outside triple-quoted strings) find the end.
 *
 * @example
 * ```ts
 * extractFirstFunction("x = 1\ndef f(a):\n    return a\n\nprint(f(2))\n", "python");
 * // "def f(a):\n    return a"
 * ```
 */
export function extractFirstFunction(code: string, lang: string): string | null {
  if (lang === "python") return firstPythonFunction(code);
  const pattern = BRACE_DEFS[lang];
  if (pattern === undefined) return null;
  for (const match of code.matchAll(pattern)) {
    const start = match.index! + match[1].length;
    const firstWord = match[2].trim().split(/[\s<(]/u)[0];
    if (NOT_A_TYPE.has(firstWord)) continue;
    const end = braceBodyEnd(code, start + match[2].length - 1, lang);
    if (end !== null) return code.slice(start, end);
  }
  return null;
}

/** From the "(" or "[" that opens the parameters, the index just past the body's "}". */
function braceBodyEnd(code: string, from: number, lang: string): number | null {
  let depth = 0;
  let i = from;
  // Parameters, return type and where-clauses: up to the first "{" or ";" at bracket depth 0.
  while (i < code.length) {
    const skip = skipLiteral(code, i, lang);
    if (skip !== i) {
      i = skip;
      continue;
    }
    const ch = code[i];
    if (ch === "(" || ch === "[") depth++;
    else if (ch === ")" || ch === "]") depth--;
    else if (depth === 0 && ch === ";") return null;
    else if (depth === 0 && ch === "{") break;
    i++;
  }
  if (i >= code.length) return null;
  depth = 0;
  while (i < code.length) {
    const skip = skipLiteral(code, i, lang);
    if (skip !== i) {
      i = skip;
      continue;
    }
    if (code[i] === "{") depth++;
    else if (code[i] === "}" && --depth === 0) return i + 1;
    i++;
  }
  return null;
}

/** Past a comment or string literal starting at `i`, else `i`. */
function skipLiteral(code: string, i: number, lang: string): number {
  const two = code.slice(i, i + 2);
  if (two === "//") {
    const end = code.indexOf("\n", i);
    return end < 0 ? code.length : end;
  }
  if (two === "/*") {
    const end = code.indexOf("*/", i + 2);
    return end < 0 ? code.length : end + 2;
  }
  const ch = code[i];
  if (ch === "'" && lang === "rust" && !/^'(?:\\.|[^\\'])'/u.test(code.slice(i, i + 12))) {
    return i; // a lifetime, not a char literal
  }
  if (ch === '"' || ch === "'" || (ch === "`" && (lang === "typescript" || lang === "go"))) {
    let j = i + 1;
    while (j < code.length && code[j] !== ch) {
      if (code[j] === "\\" && ch !== "`") j++;
      else if (code[j] === "\n" && ch !== "`") return j;
      j++;
    }
    return Math.min(j + 1, code.length);
  }
  return i;
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function firstPythonFunction(code: string): string | null {
  PYTHON_DEF.lastIndex = 0;
  const match = PYTHON_DEF.exec(code);
  if (match === null) return null;
  const baseIndent = match[1].length;
  const start = match.index + match[1].length;
  // The header ends at the ":" outside brackets and strings.
  let i = start + match[2].length - 1;
  let depth = 0;
  for (; i < code.length; i++) {
    const ch = code[i];
    if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === ")" || ch === "]" || ch === "}") depth--;
    else if (ch === "#" && depth === 0) break;
    else if (ch === ":" && depth === 0) break;
  }
  const headerLineEnd = code.indexOf("\n", i);
  if (headerLineEnd < 0) return code.slice(start).trimEnd();
  // Body: the following lines that are blank or indented deeper than the def.
  let end = headerLineEnd;
  let pos = headerLineEnd + 1;
  let quote: string | null = null;
  while (pos < code.length) {
    const lineEnd = code.indexOf("\n", pos) < 0 ? code.length : code.indexOf("\n", pos);
    const line = code.slice(pos, lineEnd);
    if (quote === null && line.trim() !== "" && indentOf(line) <= baseIndent) break;
    for (const q of ['"""', "'''"]) {
      let at = line.indexOf(q);
      while (at >= 0 && (quote === null || quote === q)) {
        quote = quote === null ? q : null;
        at = line.indexOf(q, at + 3);
      }
    }
    if (line.trim() !== "") end = lineEnd;
    pos = lineEnd + 1;
  }
  return code.slice(start, end);
}
