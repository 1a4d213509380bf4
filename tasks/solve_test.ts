/**
 * The checker: every generated answer must be recoverable from the text alone. For each
 * registered generator, a solver reads the context and the query the way a reader would
 * (it never looks at the generator's internals or the sample's meta), and must arrive at the
 * reference answers. A generator without a solver here fails the test.
 */

import { assert, assertEquals } from "../tests/assert.ts";
import type { TextTokenizer } from "../engine/tokenizer.ts";
import { listTasks, parseTaskOptions } from "./registry.ts";
import type { Query, Sample } from "./types.ts";
import type { GeneratorAdapter } from "./generators/common.ts";
import { fixtureTokenizer, tinyTokenizer } from "./generators/testing.ts";
import { getMetric } from "./metrics/mod.ts";
import { referenceCompletion } from "./prompt.ts";

type Solver = (context: string, query: Query) => string[];

function must<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`solver: cannot find ${what}`);
  return value;
}

/** Top `k` entries of a count map, which must be strictly more frequent than the rest. */
function strictTop(counts: Map<string, number>, k: number): string[] {
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  assert(ranked.length >= k, `only ${ranked.length} distinct words`);
  if (ranked.length > k) {
    assert(ranked[k - 1][1] > ranked[k][1], `tie at rank ${k}: ${ranked[k - 1]} vs ${ranked[k]}`);
  }
  return ranked.slice(0, k).map(([w]) => w);
}

// --- RULER tasks ---------------------------------------------------------------------------

function solveNiah(context: string, query: Query): string[] {
  const byKey = new Map<string, string[]>();
  for (
    const m of context.matchAll(/One of the special magic (?:numbers|uuids) for (\S+) is: (\S+)\./g)
  ) {
    byKey.set(m[1], [...(byKey.get(m[1]) ?? []), m[2]]);
  }
  const asked =
    must(query.prompt.match(/ for (.+) mentioned in the provided text\?$/), "the keys")[1];
  const keys = asked.split(/, and |, /);
  return keys.flatMap((k) => must(byKey.get(k), `a needle for ${k}`));
}

function solveVt(context: string, query: Query): string[] {
  const value = must(query.prompt.match(/assigned the value (\d+)/), "the value")[1];
  const holds = new Map<string, string>(); // variable → value or "VAR name"
  for (const m of context.matchAll(/VAR ([A-Z]+) = (\d+|VAR [A-Z]+)/g)) holds.set(m[1], m[2]);
  const resolve = (v: string, depth = 0): string => {
    const h = must(holds.get(v), `variable ${v}`);
    assert(depth < 1000, "cyclic chain");
    return h.startsWith("VAR ") ? resolve(h.slice(4), depth + 1) : h;
  };
  return [...holds.keys()].filter((v) => resolve(v) === value);
}

function solveCwe(context: string, query: Query): string[] {
  const k = Number(must(query.prompt.match(/What are the (\d+) most common words/), "k")[1]);
  const counts = new Map<string, number>();
  let expected = 1;
  for (const m of context.matchAll(/(\d+)\. (\S+)/g)) {
    assertEquals(Number(m[1]), expected++, "list numbering");
    counts.set(m[2], (counts.get(m[2]) ?? 0) + 1);
  }
  return strictTop(counts, k);
}

function solveFwe(context: string): string[] {
  const counts = new Map<string, number>();
  for (const w of context.split(/\s+/)) {
    if (w !== "" && w !== "....") counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return strictTop(counts, 3);
}

function documents(context: string): string[] {
  return context.split(/(?:^|\n\n)Document \d+:\n/).filter((d) => d.length > 0);
}

function solveQa(context: string, query: Query): string[] {
  const docs = documents(context);
  let question = must(query.prompt.match(/Question: (.+)$/), "the question")[1];
  // Two hops: "the founder of X" → the person an organisation's history names.
  const founderOf = question.match(/the founder of (the .+?)(?: born| play)?\?$/);
  let person: string;
  if (founderOf !== null) {
    const org = founderOf[1].replace(/^the /, "");
    const names: string[] = [];
    for (const d of docs) {
      const a = d.match(
        new RegExp(`^The ${escape(org)} was founded in \\d+ by ([A-Z][a-z]+ [A-Z][a-z]+)\\.`),
      );
      const b = d.match(
        new RegExp(`^([A-Z][a-z]+ [A-Z][a-z]+) founded the ${escape(org)} in \\d+\\.`),
      );
      if (a !== null) names.push(a[1]);
      if (b !== null) names.push(b[1]);
    }
    assertEquals(names.length, 1, `documents naming the founder of ${org}`);
    person = names[0];
    question = question.replace(`the founder of ${founderOf[1]}`, person);
  } else {
    person = must(question.match(/([A-Z][a-z]+ [A-Z][a-z]+)/), "a name")[1];
  }
  const bios = docs.filter((d) =>
    d.startsWith(`${person} was `) || d.startsWith(`${person} worked as `)
  );
  assertEquals(bios.length, 1, `biographies of ${person}`);
  const bio = bios[0];
  const find = (patterns: RegExp[], what: string): RegExpMatchArray => {
    for (const p of patterns) {
      const m = bio.match(p);
      if (m !== null) return m;
    }
    throw new Error(`solver: no ${what} in the biography of ${person}`);
  };
  if (question.startsWith("What was the profession of")) {
    const name = escape(person);
    return [
      find([
        new RegExp(`^${name} was an? (.+?)\\.`),
        new RegExp(`^${name} worked as an? (.+?) for most of`),
      ], "profession")[1],
    ];
  }
  if (question.startsWith("In which town was")) {
    return [
      find([/born in the town of ([A-Z][a-z]+)\./, /hometown was ([A-Z][a-z]+)\./], "town")[1],
    ];
  }
  if (question.startsWith("Which instrument")) {
    return [
      find([/played the ([a-z ]+?)\./, /known for playing the ([a-z ]+?)\./], "instrument")[1],
    ];
  }
  const founded = find([
    /In (\d+), (?:she|he) founded the (.+?)\./,
    /(?:She|He) founded the (.+?) in (\d+)\./,
  ], "organisation");
  const [year, org] = /^\d+$/.test(founded[1])
    ? [founded[1], founded[2]]
    : [founded[2], founded[1]];
  if (question.startsWith("Which organization")) return [org];
  if (question.startsWith("In which year")) return [year];
  throw new Error(`solver: unknown question "${question}"`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function solveKv(context: string, query: Query): string[] {
  const json = must(context.match(/^JSON data:\n(\{.*\})$/s), "the JSON object")[1];
  const object = JSON.parse(json) as Record<string, string>;
  const key = must(query.prompt.match(/^Key: "([^"]+)"/), "the key")[1];
  return [must(object[key], `key ${key}`)];
}

// --- code ------------------------------------------------------------------------------------

/** Python functions of a text: `def` lines and their indented bodies. */
function pythonFunctions(text: string): string[] {
  const lines = text.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith("def ")) continue;
    let j = i + 1;
    while (j < lines.length && lines[j].startsWith("    ")) j++;
    out.push(lines.slice(i, j).join("\n"));
  }
  return out;
}

/** What a function does, read from its code, as "kind constants". */
function readCode(code: string): string {
  const m = (re: RegExp) => code.match(re);
  let r: RegExpMatchArray | null;
  if ((r = m(/if (\w+)\[\w+\] \+ \1\[\w+\] == (\d+):/))) return `pairs adding to ${r[2]}`;
  if ((r = m(/= \w+, (\d+) \* \w+ \+ (\d+) \* \w+/))) return `recurrence ${r[1]} ${r[2]}`;
  if ((r = m(/% 10[\s\S]*return \w+ \* (\d+)$/))) return `digit sum times ${r[1]}`;
  if ((r = m(/if \w+ < (\d+):[\s\S]*elif \w+ > (\d+):/))) return `clamp ${r[1]} ${r[2]}`;
  if ((r = m(/in 'aeiou':[\s\S]*\+= '(.)'/))) return `vowels to ${r[1]}`;
  if ((r = m(/if \w+(\.lower\(\))? == '([a-z])':/))) {
    return `letter ${r[2]} ${r[1] ? "any case" : "exact case"}`;
  }
  if ((r = m(/\.split\(' '\):[\s\S]*if len\(\w+\) > (\d+):/))) return `words longer than ${r[1]}`;
  if ((r = m(/if len\(\w+\) >= (\d+):/))) return `length histogram from ${r[1]}`;
  if ((r = m(/if \w+ % (\d+) > \w+:/))) return `max remainder ${r[1]}`;
  if ((r = m(/if \w+ > (\d+):[\s\S]*return \w+ \/ \w+$/))) return `mean above ${r[1]}`;
  if ((r = m(/if \w+ > (\d+):\n\s+\w+ = 0/))) return `running total reset above ${r[1]}`;
  if ((r = m(/\.append\(\w+ \* (\d+) \+ (\d+)\)/))) return `scale ${r[1]} shift ${r[2]}`;
  if ((r = m(/if \w+ % (\d+) == 0:/))) return `sum of multiples of ${r[1]}`;
  if ((r = m(/if \w+ (>=|<=|>|<) (\d+):\n\s+\w+ \+= 1/))) return `count ${r[1]} ${r[2]}`;
  throw new Error(`solver: cannot read the function\n${code}`);
}

/** What a description asks for, in {@linkcode readCode}'s terms. */
function readDescription(text: string): string {
  const purpose = must(text.match(/\*\*Purpose\*\*: (.+)/), "the purpose")[1];
  const m = (re: RegExp) => purpose.match(re);
  const ops: Record<string, string> = {
    "greater than": ">",
    "less than": "<",
    "at least": ">=",
    "at most": "<=",
  };
  let r: RegExpMatchArray | null;
  if ((r = m(/whose values add up to (\d+)/))) return `pairs adding to ${r[1]}`;
  if ((r = m(/each next term is (\d+) times the previous term plus (\d+) times/))) {
    return `recurrence ${r[1]} ${r[2]}`;
  }
  if ((r = m(/sum of the decimal digits .*, multiplied by (\d+)/))) {
    return `digit sum times ${r[1]}`;
  }
  if ((r = m(/to the range from (\d+) to (\d+)/))) return `clamp ${r[1]} ${r[2]}`;
  if ((r = m(/vowel of a string with the character '(.)'/))) return `vowels to ${r[1]}`;
  if ((r = m(/the letter '([a-z])' appears in a string, (ignoring case|matching case exactly)/))) {
    return `letter ${r[1]} ${r[2] === "ignoring case" ? "any case" : "exact case"}`;
  }
  if ((r = m(/words of a sentence that are longer than (\d+) characters/))) {
    return `words longer than ${r[1]}`;
  }
  if ((r = m(/ignoring words shorter than (\d+) characters/))) {
    return `length histogram from ${r[1]}`;
  }
  if ((r = m(/largest remainder .* divided by (\d+)/))) return `max remainder ${r[1]}`;
  if ((r = m(/average of the numbers .* greater than (\d+)/))) return `mean above ${r[1]}`;
  if ((r = m(/restarting the total from zero whenever it exceeds (\d+)/))) {
    return `running total reset above ${r[1]}`;
  }
  if ((r = m(/multiplying it by (\d+) and then adding (\d+)/))) {
    return `scale ${r[1]} shift ${r[2]}`;
  }
  if ((r = m(/divisible by (\d+)/))) return `sum of multiples of ${r[1]}`;
  if ((r = m(/are (greater than|less than|at least|at most) (\d+)\./))) {
    return `count ${ops[r[1]]} ${r[2]}`;
  }
  throw new Error(`solver: cannot read the description "${purpose}"`);
}

function solveRepoQa(context: string, query: Query): string[] {
  const wanted = readDescription(query.prompt);
  const matches = pythonFunctions(context).filter((f) => readCode(f) === wanted);
  assertEquals(matches.length, 1, `functions that ${wanted}`);
  return matches;
}

function solveCodeCompletion(context: string): string[] {
  const lines = context.split("\n");
  let last = lines.length - 1;
  while (!lines[last].startsWith("def ")) last--;
  const window = lines.slice(last + 1);
  assert(window.length >= 2, "at least two lines of the last function are shown");
  const next = new Set<string>();
  for (let i = 0; i + window.length < last; i++) {
    if (window.every((l, k) => lines[i + k] === l)) next.add(lines[i + window.length].trim());
  }
  assertEquals(next.size, 1, "earlier copies of the visible lines agree on the next line");
  return [...next];
}

// --- math ------------------------------------------------------------------------------------

const FRACTION_WORDS: Record<string, number> = { half: 2, "a third": 3, "a quarter": 4 };

/** Solve a generated word problem from its text. */
function solveWordProblem(text: string): number {
  const sentences = text.trim().split(/(?<=[.?])\s+/);
  let v = 0;
  let r: RegExpMatchArray | null;
  let wage = 0;
  for (const s of sentences) {
    const m = (re: RegExp) => s.match(re);
    if ((r = m(/^\w+ has (\d+) /))) v = Number(r[1]);
    else if ((r = m(/goes to the store with \$(\d+)\./))) v = Number(r[1]);
    else if ((r = m(/reading a book with (\d+) pages/))) v = Number(r[1]);
    else if ((r = m(/earns \$(\d+) an hour/))) wage = Number(r[1]);
    else if ((r = m(/works (\d+) hours a day for (\d+) days/))) {
      v = wage * Number(r[1]) * Number(r[2]);
    } else if ((r = m(/buys (\d+) packs of .+ with (\d+) .+ in each pack/))) {
      v += Number(r[1]) * Number(r[2]);
    } else if ((r = m(/buys (\d+) more /))) v += Number(r[1]);
    else if ((r = m(/gives (?:him|her) (\d+) more /))) v += Number(r[1]);
    else if ((r = m(/buys (\d+) .+ for \$(\d+) each/))) v -= Number(r[1]) * Number(r[2]);
    else if ((r = m(/coupon that takes \$(\d+) off/))) v += Number(r[1]);
    else if ((r = m(/gives away (half|a third|a quarter) of/))) v -= v / FRACTION_WORDS[r[1]];
    else if ((r = m(/gives (\d+) .+ to /))) v -= Number(r[1]);
    else if ((r = m(/loses (\d+) /))) v -= Number(r[1]);
    else if (m(/doubles the number of/)) v *= 2;
    else if (m(/triples the number of/)) v *= 3;
    else if ((r = m(/reads (\d+) pages a day for (\d+) (?:more )?days/))) {
      v -= Number(r[1]) * Number(r[2]);
    } else if ((r = m(/spends \$(\d+) on /))) v -= Number(r[1]);
    else if (m(/puts half of the money that is left into savings/)) v /= 2;
    else if (!s.endsWith("?")) throw new Error(`solver: cannot read "${s}"`);
  }
  assert(Number.isInteger(v) && v >= 0, `answer ${v} is a non-negative integer`);
  return v;
}

function solveGsm(context: string, query: Query): string[] {
  const question = must(query.prompt.match(/Q: (.+)$/), "the question")[1];
  return [`#### ${solveWordProblem(context + " " + question)}`];
}

function solveMath(context: string): string[] {
  return [String(solveWordProblem(must(context.match(/^Problem: (.+)$/s), "the problem")[1]))];
}

// --- the check -------------------------------------------------------------------------------

const SOLVERS: Record<string, Solver> = {
  niah_single_1: solveNiah,
  niah_single_2: solveNiah,
  niah_single_3: solveNiah,
  niah_multikey_1: solveNiah,
  niah_multikey_2: solveNiah,
  niah_multikey_3: solveNiah,
  niah_multivalue: solveNiah,
  niah_multiquery: solveNiah,
  vt: solveVt,
  cwe: solveCwe,
  fwe: solveFwe,
  qa_1: solveQa,
  qa_2: solveQa,
  kv_retrieval: solveKv,
  repoqa: solveRepoQa,
  code_completion: solveCodeCompletion,
  gsm_synth: solveGsm,
  math_synth: solveMath,
};

/** How a solver's answers compare with the references. */
function expected(task: string, query: Query): string[] {
  if (task === "gsm_synth") return [query.answers[0].slice(query.answers[0].lastIndexOf("#### "))];
  return query.answers;
}

function check(sample: Sample): void {
  const solve = SOLVERS[sample.task];
  for (const [i, query] of sample.queries.entries()) {
    const got = solve(sample.context, query);
    const want = expected(sample.task, query);
    // Answers the metric checks as a set (all references) compare as sets.
    assertEquals([...got].sort(), [...want].sort(), `${sample.id} query ${i}`);
  }
}

function generators(): GeneratorAdapter[] {
  return listTasks().filter((t) => t.source === "generator") as GeneratorAdapter[];
}

function sampleOf(
  task: GeneratorAdapter,
  tokenizer: TextTokenizer,
  raw: Record<string, unknown>,
  index: number,
): Sample {
  const options = parseTaskOptions(
    task,
    task.lengthControlled ? raw : { seed: raw.seed, split: raw.split },
  );
  return task.sample(options as never, { tokenizer }, index);
}

Deno.test("every generator has a solver", () => {
  const missing = generators().map((t) => t.name).filter((n) => !(n in SOLVERS));
  assertEquals(missing, []);
});

Deno.test("every generated answer is recovered from the text alone (tiny tokenizer, random depths, 2K)", async () => {
  const tokenizer = await tinyTokenizer();
  for (const task of generators()) {
    for (const index of [0, 1, 2]) {
      check(sampleOf(task, tokenizer, { targetTokens: 2048, seed: 11 }, index));
    }
  }
});

Deno.test("answers are recovered at the edges: depth 0 and 1, training seeds, the fixture tokenizer", async () => {
  const tiny = await tinyTokenizer();
  const fixture = await fixtureTokenizer();
  for (const task of generators()) {
    check(sampleOf(task, tiny, { targetTokens: 1536, depth: 0, seed: 3 }, 0));
    check(sampleOf(task, tiny, { targetTokens: 1536, depth: 1, seed: 3 }, 0));
    check(sampleOf(task, tiny, { targetTokens: 3000, seed: 2_000_000, split: "train" }, 5));
    check(sampleOf(task, fixture, { targetTokens: 4096, seed: 7 }, 1));
  }
});

/** Samples per task in the sweep below; raise it (EVICTBENCH_SOLVE_SAMPLES=500) for a deep check. */
const SWEEP_SAMPLES = Number(Deno.env.get("EVICTBENCH_SOLVE_SAMPLES") ?? 5);
/** Their target length; raise it (EVICTBENCH_SOLVE_TOKENS=32768) to check long contexts. */
const SWEEP_TOKENS = Number(Deno.env.get("EVICTBENCH_SOLVE_TOKENS") ?? 1600);

Deno.test("many small samples: answers stay recoverable across seeds", async () => {
  const tokenizer = await tinyTokenizer();
  for (const task of generators()) {
    for (let index = 0; index < SWEEP_SAMPLES; index++) {
      check(sampleOf(task, tokenizer, { targetTokens: SWEEP_TOKENS, seed: 100 + index }, index));
    }
  }
});

Deno.test("a perfect completion scores 1 under each query's registered metric", async () => {
  const tokenizer = await tinyTokenizer();
  for (const task of generators()) {
    const sample = sampleOf(task, tokenizer, { targetTokens: 2048, seed: 21 }, 0);
    for (const query of sample.queries) {
      const metric = getMetric(query.metric);
      const score = metric.score(referenceCompletion(query), query.answers, { meta: query.meta });
      assertEquals(score, 1, `${task.name}: ${query.metric} of the reference completion`);
    }
  }
});
