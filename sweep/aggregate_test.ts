import { assert, assertAlmostEquals, assertEquals } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { aggregate, bootstrapInterval, seriesKey } from "./aggregate.ts";
import type { ResultRow } from "./store.ts";

Deno.test("a sample's score is the mean of its queries; a cell's the mean over samples", () => {
  const rows = syntheticRows({ methods: ["full"], tasks: ["t"], samples: 2, queries: 2 });
  rows.forEach((r, i) => (r.score = [1, 0, 1, 1][i]));
  const [cell] = aggregate(rows).filter((c) => c.scope === "task");
  assertEquals(cell.n_samples, 2);
  assertEquals(cell.n_queries, 4);
  assertAlmostEquals(cell.score, (0.5 + 1) / 2, 1e-12);
  assertAlmostEquals(cell.relative, 1, 1e-12);
});

Deno.test("relative performance divides by full on the same task; the average is over tasks ×100", () => {
  const rows = syntheticRows({
    methods: ["full", "snapkv"],
    budgets: [0.5],
    tasks: ["a", "b"],
    samples: 1,
    queries: 1,
  });
  const score: Record<string, number> = {
    "full|1|a": 0.8,
    "full|1|b": 0.5,
    "snapkv|0.5|a": 0.4,
    "snapkv|0.5|b": 0.5,
  };
  for (const r of rows) r.score = score[r.cell_id];
  const cells = aggregate(rows);
  const a = cells.find((c) => c.method === "snapkv" && c.task === "a")!;
  assertAlmostEquals(a.relative, 0.5, 1e-12);
  const avg = cells.find((c) => c.method === "snapkv" && c.scope === "average")!;
  assertAlmostEquals(avg.score, 100 * (0.5 + 1) / 2, 1e-9);
});

Deno.test("answer NLL: a cell's mean over rows that have one; an average needs every task's", () => {
  const rows = syntheticRows({
    methods: ["full", "snapkv"],
    budgets: [0.5],
    tasks: ["a", "b"],
    samples: 1,
    queries: 2,
  });
  const nll: Record<string, number[]> = {
    "full|1|a": [1, 3],
    "full|1|b": [2, NaN],
    "snapkv|0.5|a": [4, 6],
    "snapkv|0.5|b": [NaN, NaN],
  };
  for (const r of rows) r.answer_nll = nll[r.cell_id][r.query_index];
  const cells = aggregate(rows);
  const cell = (method: string, task: string) =>
    cells.find((c) => c.method === method && c.task === task)!;
  assertEquals(cell("full", "a").answer_nll, 2);
  assertEquals(cell("full", "b").answer_nll, 2, "the query without one is left out");
  assertEquals(cell("snapkv", "a").answer_nll, 5);
  assert(Number.isNaN(cell("snapkv", "b").answer_nll));
  const average = (method: string) =>
    cells.find((c) => c.method === method && c.scope === "average" && c.suite === "long-context")!;
  assertEquals(average("full").answer_nll, 2);
  assert(Number.isNaN(average("snapkv").answer_nll), "b has none: no average");
});

Deno.test("averages leave out tasks the full cache never solves, and need every other task", () => {
  const rows = syntheticRows({
    methods: ["full", "snapkv", "h2o"],
    budgets: [0.5],
    tasks: ["a", "b", "c"],
    samples: 1,
    queries: 1,
  });
  const score: Record<string, number> = {
    "full|1|a": 0.8,
    "full|1|b": 0,
    "full|1|c": 0.5,
    "snapkv|0.5|a": 0.4,
    "snapkv|0.5|b": 0.3,
    "snapkv|0.5|c": 0.5,
    "h2o|0.5|a": 0.8,
    "h2o|0.5|b": 0,
  };
  // h2o has no cell on task c: its average would run over fewer tasks than snapkv's.
  const kept = rows.filter((r) => r.cell_id in score);
  for (const r of kept) r.score = score[r.cell_id];
  const cells = aggregate(kept);
  const average = (method: string) =>
    cells.find((c) => c.method === method && c.scope === "average")!;
  assertAlmostEquals(average("snapkv").score, 100 * (0.5 + 1) / 2, 1e-9);
  assertAlmostEquals(average("full").score, 100, 1e-9);
  assert(Number.isNaN(average("h2o").score), "an average missing a solved task is undefined");
});

Deno.test("bootstrap interval brackets the mean, narrows with n and is seeded", () => {
  const small = Array.from({ length: 10 }, (_, i) => i % 2);
  const large = Array.from({ length: 1000 }, (_, i) => i % 2);
  const [l1, h1] = bootstrapInterval(small, { seed: 3 });
  const [l2, h2] = bootstrapInterval(large, { seed: 3 });
  assert(l1 <= 0.5 && 0.5 <= h1);
  assert(
    h2 - l2 < (h1 - l1) / 4,
    `1000 samples should give a much narrower interval: ${h2 - l2} vs ${h1 - l1}`,
  );
  assertEquals(bootstrapInterval(small, { seed: 3 }), [l1, h1]);
});

Deno.test("one task at two lengths: two labelled cells, each relative to its own full cache", () => {
  const rows = syntheticRows({
    methods: ["full", "snapkv"],
    budgets: [0.5],
    tasks: ["niah"],
    samples: 1,
    queries: 1,
  });
  const long = rows.map((r) => ({
    ...r,
    cell_id: `${r.cell_id}|4096`,
    task_options: '{"seed":0,"targetTokens":4096}',
  }));
  const score: Record<string, number> = {
    "full|1|niah": 1,
    "snapkv|0.5|niah": 0.5,
    "full|1|niah|4096": 0.5,
    "snapkv|0.5|niah|4096": 0.5,
  };
  for (const r of [...rows, ...long]) r.score = score[r.cell_id];
  const cells = aggregate([...rows, ...long]).filter((c) => c.scope === "task");
  const snap = (tokens: number) =>
    cells.find((c) => c.method === "snapkv" && c.task === `niah (${tokens} tokens)`)!;
  assertAlmostEquals(snap(1024).relative, 0.5, 1e-12);
  assertAlmostEquals(snap(4096).relative, 1, 1e-12);
  assertEquals(snap(4096).task_options, '{"seed":0,"targetTokens":4096}');
  // One option set per task: the task keeps its plain name.
  assertEquals(new Set(aggregate(rows).map((c) => c.task)), new Set(["niah", "(average)"]));
});

/** `rows` as another series would write them: `changes` applied, cell ids made their own. */
function variant(
  rows: readonly ResultRow[],
  tag: string,
  changes: Partial<ResultRow>,
): ResultRow[] {
  return rows.map((r) => ({ ...r, ...changes, cell_id: `${r.cell_id}|${tag}` }));
}

/** Rows of full (score 1) and snapkv at 0.5 (score `snap`) on tasks a and b, 2 samples each. */
function pair(snap: number): ResultRow[] {
  const rows = syntheticRows({
    methods: ["full", "snapkv"],
    budgets: [0.5],
    tasks: ["a", "b"],
    samples: 2,
    queries: 1,
  });
  for (const r of rows) r.score = r.method === "full" ? 1 : snap;
  return rows;
}

Deno.test("series that differ in policy or safeguard never merge: cells, averages", () => {
  const perHead = pair(0.5);
  const snap = perHead.filter((r) => r.method === "snapkv");
  const global = variant(snap, "global", { policy: "global", score: 0.25 });
  const guarded = variant(snap, "global+0.2", { policy: "global", safeguard: 0.2, score: 1 });
  const cells = aggregate([...perHead, ...global, ...guarded]);
  const averages = cells.filter((c) =>
    c.scope === "average" && c.method === "snapkv" && Number.isNaN(c.target_tokens)
  );
  assertEquals(averages.length, 3);
  const of = (policy: string, safeguard: number) =>
    averages.find((c) => c.policy === policy && Object.is(c.safeguard, safeguard))!;
  assertAlmostEquals(of("per-head", NaN).score, 50, 1e-9);
  assertAlmostEquals(of("global", NaN).score, 25, 1e-9);
  assertAlmostEquals(of("global", 0.2).score, 100, 1e-9);
  for (const c of averages) assertEquals(c.n_samples, 4, "2 samples × 2 tasks, not pooled");
  const taskCells = cells.filter((c) => c.scope === "task" && c.task === "a");
  assertEquals(taskCells.length, 4);
  assertEquals(new Set(taskCells.map((c) => seriesKey(c))).size, 4);
});

Deno.test("two models, two protocols or two seeds: separate averages, each against its own full cache", () => {
  const base = pair(0.5);
  const cells = aggregate([
    ...base,
    ...variant(pair(0.25), "m2", { model: "models/other" }),
    ...variant(pair(0.75), "aware", { protocol: "query-aware" }),
    // Seed 1 only for snapkv: its relative figures come from the full cache at seed 0.
    ...variant(pair(1).filter((r) => r.method === "snapkv"), "s1", { seed: 1 }),
  ]);
  const averages = cells.filter((c) =>
    c.scope === "average" && c.method === "snapkv" && Number.isNaN(c.target_tokens)
  );
  const score = (f: (c: typeof averages[number]) => boolean) => averages.find(f)!.score;
  assertEquals(averages.length, 4);
  assertAlmostEquals(score((c) => c.model === "models/other"), 25, 1e-9);
  assertAlmostEquals(score((c) => c.protocol === "query-aware"), 75, 1e-9);
  assertAlmostEquals(score((c) => c.seed === 1), 100, 1e-9);
  assertAlmostEquals(
    score((c) => c.model === "models/tiny" && c.protocol === "query-agnostic" && c.seed === 0),
    50,
    1e-9,
  );
  for (const c of averages) assertEquals(c.n_samples, 4);
  assertEquals(
    new Set(cells.filter((c) => c.scope === "task").map((c) => c.seed)),
    new Set([0, 1]),
  );
});

Deno.test("a full cache run at two seeds counts each task once: averages stay defined", () => {
  const rows = pair(0.5);
  const fullAgain = variant(rows.filter((r) => r.method === "full"), "s1", { seed: 1 });
  const average = aggregate([...rows, ...fullAgain]).find((c) =>
    c.scope === "average" && c.method === "snapkv" && Number.isNaN(c.target_tokens)
  )!;
  assertAlmostEquals(average.score, 50, 1e-9);
});

Deno.test("averages per suite and per context length, with the mean score beside the relative one", () => {
  // Tasks a and b at 1024 and 4096 tokens (long-context), task m in the math suite.
  const at = (length: number, suite = "long-context") =>
    variant(pair(0.5), `${suite}${length}`, {
      suite,
      task_options: `{"seed":0,"targetTokens":${length}}`,
    });
  const short = at(1024);
  const long = at(4096);
  for (const r of long) if (r.method === "snapkv") r.score = r.task === "a" ? 0.25 : 0.75;
  for (const r of long) if (r.method === "full") r.score = 0.5;
  const math = variant(pair(1).filter((r) => r.task === "a"), "math", {
    suite: "math",
    task: "m",
    task_options: "{}",
  });
  const averages = aggregate([...short, ...long, ...math]).filter((c) =>
    c.scope === "average" && c.method === "snapkv"
  );
  const find = (suite: string, length: number) =>
    averages.find((c) => c.suite === suite && Object.is(c.target_tokens, length))!;
  // 1024: relative 0.5 on both tasks; 4096: 0.25/0.5 and 0.75/0.5.
  assertAlmostEquals(find("long-context", 1024).score, 50, 1e-9);
  assertAlmostEquals(find("long-context", 4096).score, 100, 1e-9);
  assertAlmostEquals(find("long-context", NaN).score, 75, 1e-9);
  assertAlmostEquals(find("long-context", 1024).absolute, 0.5, 1e-9);
  assertAlmostEquals(find("long-context", 4096).absolute, 0.5, 1e-9);
  assertAlmostEquals(find("long-context", NaN).absolute, 0.5, 1e-9);
  assertAlmostEquals(find("math", NaN).score, 100, 1e-9);
  assertAlmostEquals(find("math", NaN).absolute, 1, 1e-9);
  assertEquals(find("long-context", 4096).n_samples, 4);
  assertEquals(find("long-context", NaN).n_samples, 8);
  assertEquals(averages.length, 4, "long-context overall, 1024, 4096; math overall (no length)");
  // Read in order: suite, its overall, then its lengths.
  assertEquals(
    averages.map((c) => `${c.suite} ${c.target_tokens}`),
    ["long-context NaN", "long-context 1024", "long-context 4096", "math NaN"],
  );
});

Deno.test("MRCR keeps its cells but is left out of averages; a series missing a task has no mean score", () => {
  const rows = pair(0.5);
  const mrcr = variant(rows.filter((r) => r.task === "a"), "mrcr", { task: "mrcr_file" });
  for (const r of mrcr) r.score = r.method === "full" ? 0.8 : 0.2;
  const cells = aggregate([...rows, ...mrcr]);
  assert(cells.some((c) => c.scope === "task" && c.task === "mrcr_file" && c.method === "snapkv"));
  const average = cells.find((c) =>
    c.scope === "average" && c.method === "snapkv" && Number.isNaN(c.target_tokens)
  )!;
  assertAlmostEquals(average.score, 50, 1e-9);
  assertAlmostEquals(average.absolute, 0.5, 1e-9);
  assertEquals(average.n_queries, 4, "tasks a and b only");
  // Averaged by an explicit choice instead of the task registry's flag.
  const all = aggregate([...rows, ...mrcr], { averaged: () => true }).find((c) =>
    c.scope === "average" && c.method === "snapkv" && Number.isNaN(c.target_tokens)
  )!;
  assertAlmostEquals(all.score, 100 * (0.5 + 0.5 + 0.25) / 3, 1e-9);
  // Without task b, snapkv averages fewer tasks than the run holds: neither mean is defined.
  const partial = aggregate(rows.filter((r) => r.method === "full" || r.task === "a"))
    .find((c) => c.scope === "average" && c.method === "snapkv")!;
  assert(Number.isNaN(partial.score) && Number.isNaN(partial.absolute));
});

/** Rows of full (score `full`) and snapkv at 0.5 (score `snap`) on tasks a and b, 2 samples each. */
function scored(full: number, snap: number): ResultRow[] {
  const rows = pair(snap);
  for (const r of rows) if (r.method === "full") r.score = full;
  return rows;
}

/** The sampling settings of a sweep at `temperature`, as rows record them. */
function sampled(temperature: number): string {
  return `{"sampling":{"temperature":${temperature},"topK":0,"topP":1}}`;
}

Deno.test("rows that differ only in window, method version or sampling are series of their own", () => {
  const plain = pair(0.5);
  const snap = plain.filter((r) => r.method === "snapkv");
  const rows = [
    ...plain,
    ...variant(snap, "w", { settings: '{"window":4096}', score: 1 }),
    ...variant(snap, "v2", { settings: '{"methodVersion":2}', score: 0.25 }),
    // Sampled at 0.7 with its own full cache, and at 0.9 without one.
    ...variant(scored(0.5, 0.25), "t7", { settings: sampled(0.7) }),
    ...variant(snap, "t9", { settings: sampled(0.9) }),
  ];
  const cells = aggregate(rows);
  const averages = cells.filter((c) =>
    c.scope === "average" && c.method === "snapkv" && Number.isNaN(c.target_tokens)
  );
  const of = (settings: string) => averages.find((c) => c.settings === settings)!;
  assertEquals(averages.length, 5);
  assertAlmostEquals(of("").score, 50, 1e-9);
  assertAlmostEquals(of('{"window":4096}').score, 100, 1e-9);
  assertAlmostEquals(of('{"methodVersion":2}').score, 25, 1e-9);
  assertAlmostEquals(of(sampled(0.7)).score, 50, 1e-9, "against the full cache sampled alike");
  assert(Number.isNaN(of(sampled(0.9)).score), "no full cache sampled at 0.9: no relative figure");
  assertAlmostEquals(of(sampled(0.9)).absolute, 0.5, 1e-9);
  for (const c of averages) assertEquals(c.n_samples, 4, "2 samples × 2 tasks, not pooled");
  const taskA = cells.filter((c) => c.scope === "task" && c.task === "a" && c.method === "snapkv");
  assertEquals(new Set(taskA.map((c) => seriesKey(c))).size, 5);
  const fulls = cells.filter((c) => c.scope === "average" && c.method === "full");
  assertEquals(fulls.map((c) => c.settings).sort(), ["", "", sampled(0.7), sampled(0.7)]);
});

Deno.test("one task read from other data files or at another version: cells of their own, each against its own full cache", () => {
  const digest = (d: string) => d.repeat(64);
  const rows = [
    ...variant(scored(1, 0.5), "d1", { task_data: digest("1") }),
    ...variant(scored(0.5, 0.5), "d2", { task_data: digest("2") }),
  ];
  const cells = aggregate(rows);
  const snap = (task: string) =>
    cells.find((c) => c.scope === "task" && c.method === "snapkv" && c.task === task)!;
  assertAlmostEquals(snap("a (data 11111111)").relative, 0.5, 1e-12);
  assertAlmostEquals(snap("a (data 22222222)").relative, 1, 1e-12);
  assertEquals(snap("b (data 22222222)").task_data, digest("2"));
  const average = cells.find((c) =>
    c.scope === "average" && c.method === "snapkv" && Number.isNaN(c.target_tokens)
  )!;
  assertAlmostEquals(average.score, 75, 1e-9, "four task variants, each relative to its own");
  assertEquals(average.n_samples, 8);
  // Two versions of a task, and two files of a loader task read at once.
  const versions = aggregate([
    ...scored(1, 0.5),
    ...variant(scored(1, 1), "v2", { task_version: 2, task_data: `${digest("3")},${digest("4")}` }),
  ]).filter((c) => c.scope === "task" && c.method === "snapkv").map((c) => [c.task, c.relative]);
  assertEquals(versions.sort(), [
    ["a (version 1, no data digest)", 0.5],
    ["a (version 2, data 33333333+44444444)", 1],
    ["b (version 1, no data digest)", 0.5],
    ["b (version 2, data 33333333+44444444)", 1],
  ]);
});

Deno.test("a cell whose older rows lack its settings and task data takes those its newer rows record", () => {
  const rows = scored(1, 0.5).map((r, i) => ({
    ...r,
    // Rows of each cell alternate: upgraded from an older rows.csv, then written since.
    settings: i % 2 === 0 ? "" : '{"window":64}',
    task_data: i % 2 === 0 ? "" : "ab".repeat(32),
  }));
  const cells = aggregate(rows);
  assert(cells.every((c) => c.settings === '{"window":64}'), "one series per method");
  const averages = cells.filter((c) => c.scope === "average" && Number.isNaN(c.target_tokens));
  assertEquals(averages.length, 2);
  assert(cells.filter((c) => c.scope === "task").every((c) => c.task_data === "ab".repeat(32)));
});
