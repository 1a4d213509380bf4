import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { InputError } from "../errors.ts";
import { readRunRows, type ResultRow, ResultsStore, TIMING_COLUMNS } from "./store.ts";

Deno.test("rows round-trip through rows.csv, quotes, commas, newlines and no safeguard included", async () => {
  const dir = await Deno.makeTempDir();
  const rows = syntheticRows({ samples: 2 }).map((
    r,
    i,
  ) => (i % 2 === 0 ? r : { ...r, safeguard: 0.2 }));
  const store = await ResultsStore.open(dir);
  assertEquals(await store.append(rows), rows.length);
  assertEquals(await readRunRows(dir), rows);
});

Deno.test("a rerun skips committed rows and never duplicates them", async () => {
  const dir = await Deno.makeTempDir();
  const rows = syntheticRows({ samples: 2 });
  await (await ResultsStore.open(dir)).append(rows.slice(0, 10));
  const again = await ResultsStore.open(dir);
  assertEquals(again.size, 10);
  assert(again.has(rows[3]));
  assertEquals(await again.append(rows), rows.length - 10);
  assertEquals((await readRunRows(dir)).length, rows.length);
});

Deno.test("bytes written after the last commit (a killed run) are dropped on open", async () => {
  const dir = await Deno.makeTempDir();
  const rows = syntheticRows({ samples: 1 });
  await (await ResultsStore.open(dir)).append(rows.slice(0, 4));
  // A run killed mid-batch: half a row on disk, the commit marker not advanced.
  const file = await Deno.open(`${dir}/rows.csv`, { append: true });
  await file.write(new TextEncoder().encode('x|0.5|vt,models/tiny,snapkv,"{}",per-he'));
  file.close();
  const store = await ResultsStore.open(dir);
  assertEquals(store.size, 4);
  await store.append(rows.slice(4, 6));
  assertEquals(await readRunRows(dir), rows.slice(0, 6));
});

Deno.test("timing columns are the only ones that may differ between identical runs", () => {
  assertEquals([...TIMING_COLUMNS].sort(), [
    "decode_ms_per_token",
    "prefill_ms",
    "scoring_ms",
    "selection_ms",
  ]);
});

Deno.test("an unwritable run directory fails before any work", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/blocker`, "");
  await assertRejects(
    () => ResultsStore.open(`${dir}/blocker/run`),
    InputError,
    "cannot write the run directory",
  );
});

Deno.test("a damaged commit marker stops the run and changes nothing", async () => {
  const rows = syntheticRows({ samples: 1 });
  /** A run dir holding 4 committed rows, then `damage` done to it. */
  const damaged = async (damage: (dir: string) => Promise<void>) => {
    const dir = await Deno.makeTempDir();
    await (await ResultsStore.open(dir)).append(rows.slice(0, 4));
    await damage(dir);
    return dir;
  };
  const cases: [(dir: string) => Promise<void>, string][] = [
    [(dir) => Deno.remove(`${dir}/rows.commit`), "rows.commit is missing but rows.csv holds"],
    [(dir) => Deno.writeTextFile(`${dir}/rows.commit`, "999999\n"), "says 999999 bytes"],
    [(dir) => Deno.remove(`${dir}/rows.csv`), "rows.csv is missing, yet rows.commit says"],
  ];
  for (const [damage, message] of cases) {
    const dir = await damaged(damage);
    const before = await Deno.readFile(`${dir}/rows.csv`).catch(() => null);
    await assertRejects(() => ResultsStore.open(dir), InputError, message);
    assertEquals(await Deno.readFile(`${dir}/rows.csv`).catch(() => null), before);
  }
  // The report still reads a rows.csv whose commit marker was lost: every row.
  const lost = await damaged((dir) => Deno.remove(`${dir}/rows.commit`));
  assertEquals(await readRunRows(lost), rows.slice(0, 4));
  const file = await Deno.makeTempFile();
  await assertRejects(() => readRunRows(file), InputError, "not a directory");
});

/** rows.csv text as an earlier evictbench wrote it: the same rows without `columns`. */
function withoutColumns(text: string, columns: readonly string[]): string {
  const [header, ...body] = parse(text) as string[][];
  const keep = header.map((c, i) => [c, i] as const).filter(([c]) => !columns.includes(c));
  return stringify([header, ...body].map((r) => keep.map(([, i]) => r[i])));
}

Deno.test("rows.csv of earlier layouts: the report reads it, a sweep does not extend it", async () => {
  const rows = syntheticRows({ samples: 1 }).slice(0, 3);
  const since = { sample_meta: "", stop_reason: "", answer_nll: NaN };
  const layouts: [string[], Partial<ResultRow>, string][] = [
    [
      ["task_options", "task_version", "safeguard", ...Object.keys(since)],
      { task_options: "", task_version: NaN, safeguard: NaN, ...since },
      "task_options or task_version or safeguard or sample_meta or stop_reason or answer_nll",
    ],
    [
      ["task_version", "safeguard", ...Object.keys(since)],
      { task_version: NaN, safeguard: NaN, ...since },
      "task_version or safeguard or sample_meta or stop_reason or answer_nll",
    ],
    [["answer_nll"], { answer_nll: NaN }, "answer_nll"],
  ];
  for (const [missing, legacyValues, named] of layouts) {
    const dir = await Deno.makeTempDir();
    await (await ResultsStore.open(dir)).append(rows.map((r) => ({ ...r, safeguard: 0.2 })));
    const legacy = withoutColumns(await Deno.readTextFile(`${dir}/rows.csv`), missing);
    await Deno.writeTextFile(`${dir}/rows.csv`, legacy);
    await Deno.writeTextFile(`${dir}/rows.commit`, `${new TextEncoder().encode(legacy).length}\n`);
    assertEquals(
      await readRunRows(dir),
      rows.map((r) => ({ ...r, safeguard: 0.2, ...legacyValues })),
    );
    await assertRejects(() => ResultsStore.open(dir), InputError, `(no ${named} column)`);
    assertEquals(await Deno.readTextFile(`${dir}/rows.csv`), legacy);
  }
});
