import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { syntheticRows } from "../tests/synthetic_rows.ts";
import { InputError } from "../errors.ts";
import {
  readRunRows,
  type ResultRow,
  ResultsStore,
  TIMING_COLUMNS,
  type UpgradeStep,
} from "./store.ts";

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

/** The columns the latest release added, which every earlier rows.csv lacks. */
const LATEST = ["task_data", "settings"];

/** Values the latest columns read as in rows written before them. */
const LATEST_LEGACY: Partial<ResultRow> = { task_data: "", settings: "" };

/**
 * A run directory whose rows.csv holds `rows` in the layout without `missing` (and the latest
 * columns), committed, followed by half a row a killed run left uncommitted. Returns the
 * directory and that rows.csv's text.
 */
async function legacyStore(
  rows: readonly ResultRow[],
  missing: readonly string[],
): Promise<{ dir: string; legacy: string }> {
  const dir = await Deno.makeTempDir();
  await (await ResultsStore.open(dir)).append(rows);
  const legacy = withoutColumns(await Deno.readTextFile(`${dir}/rows.csv`), [
    ...missing,
    ...LATEST,
  ]);
  await Deno.writeTextFile(`${dir}/rows.csv`, legacy + 'x|0.5|vt,models/tiny,"{}",per-he');
  await Deno.writeTextFile(`${dir}/rows.commit`, `${new TextEncoder().encode(legacy).length}\n`);
  return { dir, legacy };
}

/** Every file of a directory with its bytes, to show that something changed none. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for await (const entry of Deno.readDir(dir)) {
    files[entry.name] = await Deno.readTextFile(`${dir}/${entry.name}`);
  }
  return files;
}

/** Rows with recorded settings and task data, as a sweep with a data file and a window writes. */
function recordedRows(): ResultRow[] {
  return syntheticRows({ samples: 1 }).slice(0, 4).map((r, i) => ({
    ...r,
    safeguard: 0.2,
    settings: i % 2 === 0 ? '{"window":64}' : "",
    task_data: i % 2 === 0
      ? "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
      : "",
  }));
}

Deno.test("rows.csv of layouts from before today's cell ids: the report reads it, a sweep does not extend it", async () => {
  const rows = recordedRows();
  const since = { sample_meta: "", stop_reason: "", answer_nll: NaN, ...LATEST_LEGACY };
  const layouts: [string[], Partial<ResultRow>, string][] = [
    [
      ["task_options", "task_version", "safeguard", "sample_meta", "stop_reason", "answer_nll"],
      { task_options: "", task_version: NaN, safeguard: NaN, ...since },
      "task_options or task_version or safeguard or sample_meta or stop_reason or answer_nll " +
      "or task_data or settings",
    ],
    [
      ["task_version", "safeguard", "sample_meta", "stop_reason", "answer_nll"],
      { task_version: NaN, safeguard: NaN, ...since },
      "task_version or safeguard or sample_meta or stop_reason or answer_nll or task_data or " +
      "settings",
    ],
    [
      ["safeguard", "sample_meta", "stop_reason", "answer_nll"],
      { safeguard: NaN, ...since },
      "safeguard or sample_meta or stop_reason or answer_nll or task_data or settings",
    ],
  ];
  for (const [missing, legacyValues, named] of layouts) {
    const { dir } = await legacyStore(rows, missing);
    const before = await snapshot(dir);
    assertEquals(await readRunRows(dir), rows.map((r) => ({ ...r, ...legacyValues })));
    await assertRejects(() => ResultsStore.open(dir), InputError, `(no ${named} column)`);
    assertEquals(await snapshot(dir), before, "nothing was changed");
  }
});

Deno.test("rows.csv of layouts with today's cell ids is upgraded when a sweep opens it, every value kept", async () => {
  const rows = recordedRows();
  const layouts: [string[], Partial<ResultRow>][] = [
    [
      ["sample_meta", "stop_reason", "answer_nll"],
      { sample_meta: "", stop_reason: "", answer_nll: NaN, ...LATEST_LEGACY },
    ],
    [["answer_nll"], { answer_nll: NaN, ...LATEST_LEGACY }],
    [[], LATEST_LEGACY],
  ];
  for (const [missing, legacyValues] of layouts) {
    const { dir, legacy } = await legacyStore(rows, missing);
    const expected = rows.map((r) => ({ ...r, ...legacyValues }));
    // Reading does not upgrade.
    const before = await snapshot(dir);
    assertEquals(await readRunRows(dir), expected);
    assertEquals(await snapshot(dir), before);
    const store = await ResultsStore.open(dir);
    assertEquals(store.size, rows.length);
    const text = await Deno.readTextFile(`${dir}/rows.csv`);
    assertEquals(await Deno.readTextFile(`${dir}/rows.commit`), `${byteLength(text)}\n`);
    assertEquals(await readRunRows(dir), expected);
    // Every field of every row is the text the older file held; the uncommitted half row is gone.
    const [header] = parse(text) as string[][];
    assertEquals(withoutColumns(text, [...missing, ...LATEST]), legacy);
    assertEquals(header.length, parse(legacy)[0].length + missing.length + LATEST.length);
    assertEquals((await snapshot(dir))["rows.csv.upgrade"], undefined);
    // The upgraded store takes new rows, and opens again as it is.
    const more = syntheticRows({ samples: 2 }).slice(2, 4);
    assertEquals(await store.append(more), 2);
    const after = await snapshot(dir);
    assertEquals((await ResultsStore.open(dir)).size, rows.length + 2);
    assertEquals(await snapshot(dir), after);
    assertEquals(await readRunRows(dir), [...expected, ...more]);
  }
});

Deno.test("an upgrade's legacy values fill only the columns the older layout lacks", async () => {
  const rows = recordedRows();
  const { dir } = await legacyStore(rows, ["answer_nll"]);
  const seen: string[][] = [];
  await ResultsStore.open(dir, {
    legacyValues: (legacyRows, missing) => {
      seen.push([...missing]);
      assertEquals(legacyRows.map((r) => r.settings), rows.map(() => ""));
      return Promise.resolve(
        new Map([[rows[0].cell_id, { settings: '{"window":8}', answer_nll: 7, score: 42 }]]),
      );
    },
  });
  assertEquals(seen, [["answer_nll", "task_data", "settings"]]);
  const filled = rows[0].cell_id;
  assertEquals(
    await readRunRows(dir),
    rows.map((r) =>
      r.cell_id === filled
        ? { ...r, ...LATEST_LEGACY, settings: '{"window":8}', answer_nll: 7 }
        : { ...r, ...LATEST_LEGACY, answer_nll: NaN }
    ),
    "score is not a missing column: it keeps its value",
  );
});

Deno.test("an upgrade killed after any of its steps leaves a store that opens with every committed row", async () => {
  const rows = recordedRows();
  const expected = rows.map((r) => ({ ...r, ...LATEST_LEGACY }));
  for (const step of ["written", "committed", "replaced"] as UpgradeStep[]) {
    const { dir } = await legacyStore(rows, []);
    const killed = new Error(`killed after ${step}`);
    await assertRejects(
      () =>
        ResultsStore.open(dir, {
          onUpgradeStep: (done) => {
            if (done === step) throw killed;
          },
        }),
      Error,
      killed.message,
    );
    // A report reads every committed row from where rows.commit says, and changes nothing.
    const before = await snapshot(dir);
    assertEquals(await readRunRows(dir), expected, step);
    assertEquals(await snapshot(dir), before, step);
    const store = await ResultsStore.open(dir);
    assertEquals(store.size, rows.length, step);
    assertEquals(await readRunRows(dir), expected, step);
    const files = await snapshot(dir);
    assertEquals(Object.keys(files).sort(), ["rows.commit", "rows.csv"], step);
    assertEquals(files["rows.commit"], `${byteLength(files["rows.csv"])}\n`, step);
    await store.append(syntheticRows({ samples: 2 }).slice(2, 3));
    assertEquals((await readRunRows(dir)).length, rows.length + 1, step);
  }
  // Killed while writing the upgraded rows: a part of them, never committed, is dropped.
  const { dir } = await legacyStore(rows, []);
  await Deno.writeTextFile(`${dir}/rows.csv.upgrade`, "cell_id,model,meth");
  assertEquals(await readRunRows(dir), expected);
  assertEquals((await ResultsStore.open(dir)).size, rows.length);
  assertEquals(await readRunRows(dir), expected);
  assertEquals(Object.keys(await snapshot(dir)).sort(), ["rows.commit", "rows.csv"]);
});

Deno.test("a commit that names a missing upgrade beside an older rows.csv stops the store", async () => {
  const { dir, legacy } = await legacyStore(recordedRows(), []);
  await Deno.writeTextFile(`${dir}/rows.commit`, `${byteLength(legacy)} rows.csv.upgrade\n`);
  const before = await snapshot(dir);
  const message = "names rows.csv.upgrade, which is missing, and rows.csv is not its upgrade";
  await assertRejects(() => ResultsStore.open(dir), InputError, message);
  await assertRejects(() => readRunRows(dir), InputError, message);
  assertEquals(await snapshot(dir), before);
});

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}
