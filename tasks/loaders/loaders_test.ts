/**
 * Each loader on a small file in its published format: JSONL and JSON written here, Parquet
 * from tests/fixtures/loaders (tools/make_loader_fixtures.py, pyarrow, four codecs), and
 * tests/fixtures/loaders/longbench_hotpotqa.jsonl (written by hand: one sample of about 3000
 * tokens, one of about 300), which the sweep's tests share.
 */

import { InputError } from "../../errors.ts";
import { loadTokenizer } from "../../engine/tokenizer.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { getMetric } from "../metrics/mod.ts";
import { REASONING_INSTRUCTION } from "../types.ts";
import { buildPrompt, promptText } from "../prompt.ts";
import { tinyTokenizer } from "../generators/testing.ts";
import {
  loadLongbench,
  loadMath,
  loadMrcr,
  loadRuler,
  loadScbench,
  loadSquad,
  LONGBENCH_PROMPTS,
  readRows,
} from "./mod.ts";

const FIXTURES = new URL("../../tests/fixtures/loaders/", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "evictbench_loaders_" });
addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

async function write(name: string, text: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text);
  return path;
}

function jsonl(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
}

Deno.test("SQuAD v1.1 JSON: questions grouped by identical context, all answers kept", async () => {
  const doc = {
    version: "1.1",
    data: [
      {
        title: "Arvale",
        paragraphs: [
          {
            context: "Arvale was founded by Mira.",
            qas: [{
              id: "a",
              question: "Who founded Arvale?",
              answers: [{ text: "Mira", answer_start: 22 }, { text: "Mira.", answer_start: 22 }],
            }],
          },
          {
            context: "Bexton lies north.",
            qas: [{ id: "b", question: "Where?", answers: [{ text: "north", answer_start: 12 }] }],
          },
        ],
      },
      {
        title: "Again",
        paragraphs: [{
          context: "Arvale was founded by Mira.",
          qas: [{
            id: "c",
            question: "What was founded?",
            answers: [{ text: "Arvale", answer_start: 0 }],
          }],
        }],
      },
    ],
  };
  const path = await write("dev-v1.1.json", JSON.stringify(doc));
  const samples = await loadSquad(path);
  assertEquals(samples.length, 2);
  assertEquals(samples[0].id, "squad/0");
  assertEquals(samples[0].queries.map((q) => q.prompt), [
    "Q: Who founded Arvale?",
    "Q: What was founded?",
  ]);
  assertEquals(samples[0].queries[0].answers, ["Mira", "Mira."]);
  assertEquals(samples[0].queries[0].metric, "include_score");
  assertEquals(samples[0].queries[0].maxNewTokens, 256);
  assertEquals((await loadSquad(path, { limit: 1 })).length, 1);

  const bad = structuredClone(doc);
  delete (bad.data[0].paragraphs[1].qas[0] as Record<string, unknown>).question;
  await assertRejects(
    async () => await loadSquad(await write("bad-squad.json", JSON.stringify(bad))),
    InputError,
    'data[0].paragraphs[1].qas[0]: field "question" is missing; expected a string',
  );
});

Deno.test("SQuAD Hugging Face rows from Parquet (uncompressed)", async () => {
  const samples = await loadSquad(`${FIXTURES}squad_train.parquet`);
  assertEquals(samples.map((s) => s.queries.length), [2, 1]);
  assertEquals(samples[1].queries[0].answers, ["north", "north."]);
});

Deno.test("SCBench Parquet (snappy, zstd, gzip): context, Q: prompts, joined lists, rules", async () => {
  const kv = await loadScbench(`${FIXTURES}scbench_kv.parquet`);
  assertEquals(kv.length, 2);
  assertEquals(kv[0].task, "scbench_kv");
  assertEquals(kv[0].context.startsWith("JSON data:"), true);
  assertEquals(
    kv[0].queries.map((q) => [q.prompt.slice(0, 8), q.answers, q.metric, q.maxNewTokens]),
    [
      ["Q: Key: ", ["v1"], "include_score", 96],
      ["Q: Key: ", ["v2"], "include_score", 96],
    ],
  );
  const vt = await loadScbench(`${FIXTURES}scbench_vt_tiny.parquet`);
  assertEquals(vt[0].queries[0].answers, ["X1, X2"]);
  assertEquals(vt[0].queries[0].metric, "include_score_multi");
  const repo = await loadScbench(`${FIXTURES}scbench_repoqa.parquet`);
  const q = repo[0].queries[1];
  assertEquals([q.metric, q.maxNewTokens, q.meta?.funcName, q.meta?.lang], [
    "repoqa_score",
    512,
    "g",
    "python",
  ]);
  assertEquals((q.meta?.needles as unknown[]).length, 2);
  assertEquals(
    getMetric(q.metric).score("```python\ndef g(b):\n    return b * 2\n```", q.answers, q),
    1,
  );
  assertEquals(
    getMetric(q.metric).score("```python\ndef f(a):\n    return a + 1\n```", q.answers, q),
    0,
  );
});

Deno.test("SCBench JSONL: many_shot option lines, sub-tasks, malformed rows", async () => {
  const path = await write(
    "scbench_many_shot.jsonl",
    jsonl([
      { prompts: ["examples...", "Which?\n(A) cat\n(B) dog lover\nAnswer:"], ground_truth: ["B"] },
    ]),
  );
  const [sample] = await loadScbench(path);
  assertEquals(sample.queries[0].answers, ["(B) dog lover"]);
  assertEquals(sample.queries[0].metric, "include_score_manyshot");

  const multi = await write(
    "scbench_repoqa_and_kv.jsonl",
    jsonl([{
      prompts: ["ctx", "kv question", "repo question"],
      ground_truth: ["v1", "def h(): pass"],
      func_name: [null, "h"],
      task: ["scbench_kv", "scbench_repoqa"],
      lang: "python",
      repo: "r",
    }]),
  );
  const [m] = await loadScbench(multi);
  assertEquals(m.queries.map((q) => q.metric), ["include_score", "repoqa_score"]);

  const broken = await write(
    "scbench_kv.jsonl",
    '{"prompts": ["c", "q"], "ground_truth": ["a"]}\n{"prompts": ["c", "q"]\n',
  );
  await assertRejects(() => loadScbench(broken), InputError, "scbench_kv.jsonl:2: malformed JSON");
  const missing = await write(
    "x/scbench_kv.jsonl",
    jsonl([{ prompts: ["c", "q1", "q2"], ground_truth: ["a"] }]),
  );
  await assertRejects(
    () => loadScbench(missing),
    InputError,
    "scbench_kv.jsonl:1: 2 questions but 1 ground_truth",
  );
  await assertRejects(
    () => loadScbench(missing, { dataset: "scbench_nope" }),
    InputError,
    'unknown set "nope"',
  );
  await assertRejects(
    () => loadScbench(`${FIXTURES}truncated.parquet`, { dataset: "scbench_kv" }),
    InputError,
    "not a readable Parquet file",
  );
  await assertRejects(() => readRows(`${dir}/missing.parquet`), InputError, "no such file");
});

Deno.test("LongBench JSONL: template split, metric, length, first-line and classes", async () => {
  const path = await write(
    "hotpotqa.jsonl",
    jsonl([
      {
        input: "Who?",
        context: "Passage 1: ...",
        answers: ["Mira"],
        length: 120,
        dataset: "hotpotqa",
        language: "en",
        all_classes: null,
        _id: "x1",
      },
    ]),
  );
  const [s] = await loadLongbench(path);
  assertEquals(
    s.instruction,
    "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n",
  );
  assertEquals(s.context, "Passage 1: ...");
  assertEquals(
    s.queries[0].prompt,
    "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: Who?\nAnswer:",
  );
  // The template's own "Answer:" ends a plain prompt; no second cue follows it.
  assertEquals(s.queries[0].answerPrefix, "");
  const plain = buildPrompt(await tinyTokenizer("qwen3"), s, { format: "plain" });
  assert(promptText(plain).endsWith("\n\nQuestion: Who?\nAnswer:"), promptText(plain));
  assertEquals(plain.postfix.ids, []);
  assertEquals([s.queries[0].metric, s.queries[0].maxNewTokens, s.queries[0].meta?.separator], [
    "qa_f1_score",
    32,
    "\n\n",
  ]);

  const trec = await write(
    "trec_e.jsonl",
    jsonl([
      {
        input: "What is X?",
        context: "Q: a\nType: Entity",
        answers: ["Entity"],
        length: 9,
        dataset: "trec",
        all_classes: ["Entity", "Human"],
        _id: "t",
      },
    ]),
  );
  const [t] = await loadLongbench(trec);
  assertEquals(t.queries[0].meta, {
    separator: "\n",
    chatTemplate: false,
    firstLine: true,
    allClasses: ["Entity", "Human"],
  });
  assertEquals(
    getMetric(t.queries[0].metric).score("Entity\nHuman", t.queries[0].answers, t.queries[0]),
    1,
  );

  const lcc = await write(
    "lcc.jsonl",
    jsonl([{ input: "", context: "def f():\n", answers: ["    return 1"], dataset: "lcc" }]),
  );
  const [l] = await loadLongbench(lcc);
  assertEquals([l.queries[0].prompt, l.queries[0].meta?.separator], ["Next line of code:\n", ""]);
  // lcc runs in the plain format: the prompt ends as pred.py's, with the template's newline.
  const code = buildPrompt(await tinyTokenizer("qwen3"), l, l.prompt);
  assertEquals([code.format, code.query.text, code.postfix.text], [
    "plain",
    "\n\nNext line of code:",
    "\n",
  ]);

  const zh = await write(
    "dureader.jsonl",
    jsonl([{ input: "?", context: "c", answers: ["a"], dataset: "dureader" }]),
  );
  await assertRejects(
    () => loadLongbench(zh),
    InputError,
    'dureader.jsonl:1: LongBench dataset "dureader" is not a supported English task',
  );
  const noAnswers = await write(
    "qasper.jsonl",
    jsonl([{ input: "?", context: "c", dataset: "qasper" }]),
  );
  await assertRejects(
    () => loadLongbench(noAnswers),
    InputError,
    'qasper.jsonl:1: field "answers" is missing; expected a list of strings',
  );
});

Deno.test("LongBench max_length: a longer prompt keeps its first and last max_length/2 tokens, as pred.py", async () => {
  const tokenizer = await loadTokenizer(
    new URL("../../tests/fixtures/tokenizer", import.meta.url).pathname,
  );
  const path = `${FIXTURES}longbench_hotpotqa.jsonl`;
  const [longRow] = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
  // pred.py: prompt_format.format(**json_obj), measured with the special tokens (BOS here).
  const prompt = LONGBENCH_PROMPTS.hotpotqa.replace("{context}", () => longRow.context)
    .replace("{input}", () => longRow.input);
  const ids = tokenizer.encode(prompt);
  assertEquals([ids.length, ids[0]], [3020, tokenizer.tokenId("<|begin_of_text|>")]);
  const decode = (part: number[]) => tokenizer.decode(part, { skipSpecialTokens: true });
  const predPy = decode(ids.slice(0, 200)) + decode(ids.slice(-200));

  const [whole, short] = await loadLongbench(path);
  const [cut, shortCut] = await loadLongbench(path, { truncation: { maxLength: 400, tokenizer } });
  const query = cut.queries[0];
  const text = cut.instruction + cut.context + query.meta?.separator + query.prompt;
  assertEquals(text, predPy);
  // Exactly the first and last 200 tokens: the cut text encodes to them again.
  assertEquals(tokenizer.encode(text), [...ids.slice(0, 200), ...ids.slice(-200)]);
  // Only the context is cut; instruction and query stay whole.
  assertEquals([cut.instruction, cut.queries], [whole.instruction, whole.queries]);
  assert(cut.context.startsWith("Passage 1:\nArvale is a market town"), cut.context);
  assert(cut.context.endsWith("witnessed by the abbot of the nearby priory."), cut.context);
  assertEquals(cut.meta.truncated, { promptTokens: 3020, keptTokens: 400 });
  assertEquals(whole.meta.truncated, undefined);
  // A prompt within max_length (291 tokens) is left as it is.
  assertEquals(shortCut, short);
  // An odd max_length keeps floor(max_length / 2) on each side, as int(max_length/2) does.
  const [odd] = await loadLongbench(path, { truncation: { maxLength: 401, tokenizer } });
  assertEquals([odd.context, odd.meta.truncated], [cut.context, cut.meta.truncated]);
});

Deno.test("LongBench max_length: a cut that would fall in the instruction or the query is an input error", async () => {
  const tokenizer = await loadTokenizer(
    new URL("../../tests/fixtures/tokenizer", import.meta.url).pathname,
  );
  const path = `${FIXTURES}longbench_hotpotqa.jsonl`;
  const where = `${path}:1: LongBench hotpotqa sample longbench_hotpotqa/0: maxLength`;
  for (
    const [maxLength, part] of [
      [200, "the first 100 end inside its instruction (103 tokens)"],
      [230, "the last 115 begin inside its query (121 tokens)"],
    ] as const
  ) {
    const error = await assertRejects(
      () => loadLongbench(path, { truncation: { maxLength, tokenizer } }),
      InputError,
      `${where} ${maxLength} keeps the first and last`,
    );
    assert(error.message.includes(part), error.message);
    assert(error.message.includes("so that the cut falls in the context"), error.message);
    assert(!error.message.includes("\n"), error.message);
  }
});

Deno.test("RULER JSONL: new answer_prefix field and the older prefix-in-input layout", async () => {
  const newer = await write(
    "ruler/niah_single_1/validation.jsonl",
    jsonl([{
      index: 0,
      input:
        "Some special magic numbers are hidden within the following text.\nOne of the special magic numbers for tall-oak is: 4242.\nWhat are all the special magic numbers for tall-oak mentioned in the provided text?",
      outputs: ["4242"],
      length: 80,
      answer_prefix: " The special magic numbers for tall-oak mentioned in the provided text are",
    }]),
  );
  const [n] = await loadRuler(newer);
  assertEquals(n.task, "niah_single_1");
  // RULER's input opens with its own instruction: no instruction line before it.
  assertEquals(n.instruction, "");
  assert(
    promptText(buildPrompt(await tinyTokenizer("qwen3"), n, { format: "plain" }))
      .startsWith("Some special magic numbers"),
  );
  assertEquals(n.context.endsWith("is: 4242.\n"), true);
  assertEquals(
    n.queries[0].prompt,
    "What are all the special magic numbers for tall-oak mentioned in the provided text?",
  );
  assertEquals(
    n.queries[0].answerPrefix,
    " The special magic numbers for tall-oak mentioned in the provided text are",
  );
  assertEquals([n.queries[0].metric, n.queries[0].maxNewTokens], ["string_match_all", 128]);

  const older = await write(
    "ruler/qa_1/validation.jsonl",
    jsonl([{
      index: 3,
      input:
        "Answer the question based on the given documents. Only give me the answer.\n\nDocument 1: Paris is in France.\n\nAnswer the question based on the given documents. Only give me the answer.\n\nQuestion: Where is Paris? Answer:",
      outputs: ["France"],
      length: 50,
    }]),
  );
  const [o] = await loadRuler(older);
  assertEquals(o.context.includes("Document 1"), true);
  assertEquals(o.queries[0].prompt.endsWith("Question: Where is Paris?"), true);
  assertEquals([o.queries[0].answerPrefix, o.queries[0].metric, o.queries[0].maxNewTokens], [
    "Answer:",
    "string_match_part",
    32,
  ]);

  const wrong = await write(
    "ruler/vt/validation.jsonl",
    jsonl([{ index: 0, input: "no question here", outputs: ["X"], length: 3 }]),
  );
  await assertRejects(() => loadRuler(wrong), InputError, "vt/validation.jsonl:1: input has no");
  await assertRejects(
    () => loadRuler(wrong, { task: "mystery" }),
    InputError,
    'RULER task "mystery"',
  );
});

Deno.test("MRCR Parquet: rendered turns, last message as query, prefix in meta, filters", async () => {
  const samples = await loadMrcr(`${FIXTURES}mrcr.parquet`);
  assertEquals(samples.length, 2);
  const [s] = samples;
  assertEquals(
    s.context,
    "User: Write a poem about tapirs.\n\nAssistant: Tapirs wander.\n\nUser: Write a poem about frogs.\n\nAssistant: Frogs leap.\n\n",
  );
  assertEquals(s.queries[0].prompt, "Prepend k9Xq to the 1st poem about tapirs.");
  assertEquals(s.queries[0].meta, { randomStringToPrepend: "k9Xq" });
  assertEquals(
    getMetric("mrcr_grade").score("k9XqTapirs wander.", s.queries[0].answers, s.queries[0]),
    1,
  );
  assertEquals((await loadMrcr(`${FIXTURES}mrcr.parquet`, { nNeedles: 4 })).length, 1);
  assertEquals(
    (await loadMrcr(`${FIXTURES}mrcr.parquet`, { countTokens: (t) => t.length, maxTokens: 70 }))
      .length,
    1,
  );

  const bad = await write(
    "mrcr.jsonl",
    jsonl([{ prompt: "not json", answer: "a", random_string_to_prepend: "p" }]),
  );
  await assertRejects(() => loadMrcr(bad), InputError, 'mrcr.jsonl:1: field "prompt" is not JSON');
  await assertRejects(
    () => loadMrcr(`${FIXTURES}scbench_kv.parquet`),
    InputError,
    'scbench_kv.parquet:row 0: field "prompt" is missing; expected a string',
  );
});

Deno.test("math sets: GSM8K both layouts, MATH-500, AIME variants", async () => {
  const gsm = await write(
    "gsm8k.jsonl",
    jsonl([
      {
        question: "Tom has 3 apples. He buys 2 more. How many apples does he have?",
        answer: "3+2=5\n#### 5",
      },
    ]),
  );
  const [g] = await loadMath(gsm, "gsm8k");
  assertEquals([g.context, g.instruction, g.queries[0].answers, g.queries[0].metric], ["", "", [
    "5",
  ], "math_equal"]);
  assertEquals(g.queries[0].prompt.includes("Problem: Tom has 3 apples."), true);
  assertEquals(getMetric("math_equal").score("so \\boxed{5}", g.queries[0].answers), 1);

  const [f] = await loadMath(gsm, "gsm8k", { layout: "fastkvzip-gsm" });
  assertEquals(f.context, "Tom has 3 apples. He buys 2 more.");
  assertEquals(f.instruction, REASONING_INSTRUCTION);
  assertEquals(f.queries[0].prompt.endsWith("Q: How many apples does he have?"), true);
  assertEquals([f.queries[0].metric, f.queries[0].maxNewTokens], ["include_score_gsm", 512]);
  assertEquals(getMetric(f.queries[0].metric).score("The answer is 5.", f.queries[0].answers), 1);
  assertEquals(
    (await loadMath(gsm, "gsm8k", { layout: "fastkvzip-gsm", countTokens: () => 10 })).length,
    0,
  );

  const math500 = await write(
    "math500.jsonl",
    jsonl([
      {
        problem: "Compute 1/2.",
        solution: "It is $\\boxed{\\frac12}$.",
        answer: "\\frac{1}{2}",
        subject: "Algebra",
        level: 1,
        unique_id: "test/a.json",
      },
    ]),
  );
  const [m] = await loadMath(math500, "math500");
  assertEquals([m.queries[0].answers, m.queries[0].maxNewTokens, m.meta.id], [
    ["\\frac{1}{2}"],
    16384,
    "test/a.json",
  ]);

  const aime = await write(
    "aime24.jsonl",
    jsonl([{ question: "Find N.", answer: "204" }, { Problem: "Find M.", Answer: 33 }]),
  );
  const a = await loadMath(aime, "aime");
  assertEquals(a.map((s) => [s.queries[0].answers[0], s.queries[0].maxNewTokens]), [
    ["204", 32768],
    ["33", 32768],
  ]);

  const twoMarks = await write(
    "gsm_bad.jsonl",
    jsonl([{ question: "q", answer: "#### 1 #### 2" }]),
  );
  await assertRejects(
    () => loadMath(twoMarks, "gsm8k"),
    InputError,
    'gsm_bad.jsonl:1: field "answer" has 2 "####" markers',
  );
  const noProblem = await write("aime_bad.jsonl", jsonl([{ answer: "1" }]));
  await assertRejects(
    () => loadMath(noProblem, "aime"),
    InputError,
    'aime_bad.jsonl:1: none of the fields "question"',
  );
});

Deno.test("text with $ patterns reaches the prompt as written (MATH's $$, code's $' and $&)", async () => {
  const math = await write(
    "math500.jsonl",
    jsonl([{ problem: "Compute $$\\sum_{k=1}^{3} k.$$", answer: "6" }]),
  );
  const [m] = await loadMath(math, "math500");
  assert(m.queries[0].prompt.includes("Compute $$\\sum_{k=1}^{3} k.$$"), m.queries[0].prompt);
  const code = "s = '$'; t = \"$&\"";
  const lcc = await write(
    "lcc.jsonl",
    jsonl([{ input: code, context: "x = 1", answers: ["y = 2"], dataset: "repobench-p" }]),
  );
  const [l] = await loadLongbench(lcc);
  assert(l.queries[0].prompt.includes(code), l.queries[0].prompt);
  // How the benchmarks render them: repobench-p without the chat template (pred.py), math
  // reasoning as one user message with thinking on (spec §4.5).
  assertEquals(l.prompt, { format: "plain" });
  assertEquals(m.prompt, { thinking: "on", systemPrompt: null });
  const samsum = await write(
    "samsum.jsonl",
    jsonl([{ input: "A: hi\nB: bye", context: "Dialogue: x", answers: ["They greet."] }]),
  );
  const [d] = await loadLongbench(samsum);
  assertEquals([d.prompt, d.queries[0].stopStrings], [{ format: "plain" }, ["\n"]]);
});
