import { assert, assertAlmostEquals, assertEquals } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { aggregate, bootstrapInterval } from "./aggregate.ts";

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
