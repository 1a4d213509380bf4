import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { InputError } from "../errors.ts";
import { readRunRows, ResultsStore, TIMING_COLUMNS } from "./store.ts";

Deno.test("rows round-trip through rows.csv, quotes, commas and newlines included", async () => {
  const dir = await Deno.makeTempDir();
  const rows = syntheticRows({ samples: 2 });
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
