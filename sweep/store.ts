/**
 * The results store of one run directory:
 *
 * - `rows.csv`: one row per query × cell, appended in batches. Each batch is written, fsynced,
 *   and then committed by atomically replacing `rows.commit` (the byte length of the committed
 *   rows). Opening the store truncates anything past that length, so a run killed mid-write
 *   loses at most its last uncommitted batch and never leaves a half-written row.
 * - A rows.csv written by an earlier evictbench (fewer columns) is read as it is; opening it to
 *   append rewrites it in today's layout first, through `rows.csv.upgrade`, in steps that a kill
 *   at any instant leaves recoverable (see {@linkcode ResultsStore.open}).
 * - `run.json`: the run's provenance (written by the runner through {@linkcode writeJsonAtomic}).
 * - `cells.csv`: aggregates, derived from rows.csv (see aggregate.ts).
 *
 * A rerun of the same config reads the committed rows' keys and skips them, so rows are never
 * duplicated.
 *
 * @module
 */

import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { InputError } from "../errors.ts";

/** The columns of rows.csv, in order. */
export const ROW_COLUMNS = [
  "cell_id",
  "model",
  "method",
  "params",
  "policy",
  "safeguard",
  "protocol",
  "suite",
  "task",
  "task_options",
  "task_version",
  "task_data",
  "budget_kind",
  "budget",
  "seed",
  "settings",
  "sample_id",
  "sample_meta",
  "query_index",
  "metric",
  "score",
  "kept_ratio_asked",
  "kept_ratio_achieved",
  "entries_kept",
  "kv_bytes_held",
  "kv_bytes_full",
  "context_tokens",
  "prompt_tokens",
  "generated_tokens",
  "stop_reason",
  "prediction",
  "reference",
  "answer_nll",
  "prefill_ms",
  "decode_ms_per_token",
  "scoring_ms",
  "selection_ms",
] as const;

/**
 * The budget of a cell with no limit: the full cache where budgets are absolute (entries per
 * head under the decode protocol, context tokens per KV head under `budgetUnit` "tokens").
 * Reports draw it as the full cache's line, not at this x.
 */
export const UNBOUNDED_BUDGET = Number.MAX_SAFE_INTEGER;

/**
 * What a row's `budget` counts: the kept ratio r of the evictable tokens (prefill protocols), the
 * context tokens kept per KV head (prefill protocols under `budgetUnit` "tokens"), or the
 * entries kept per (layer, KV head) while decoding.
 */
export const BUDGET_KINDS = ["kept_ratio", "context_tokens", "entries_per_head"] as const;
/** A budget kind. */
export type BudgetKind = typeof BUDGET_KINDS[number];

/** A column of rows.csv. */
export type RowColumn = typeof ROW_COLUMNS[number];

/** Columns that measure time: they differ between identical runs and are left out of comparisons. */
export const TIMING_COLUMNS: readonly RowColumn[] = [
  "prefill_ms",
  "decode_ms_per_token",
  "scoring_ms",
  "selection_ms",
];

/** One result row: every column, numbers as numbers, text as text. */
export interface ResultRow {
  /** Stable id of the cell (model, method + params, budget, task, protocol, seed). */
  cell_id: string;
  model: string;
  method: string;
  /** Method parameters as canonical JSON. */
  params: string;
  /**
   * The selection policy that ran: "per-head", "per-layer" or "global" ("none" for a method that
   * never evicts, such as `full`). Rows written before the `safeguard` column hold "default" or
   * the config's override instead.
   */
  policy: string;
  /** The AdaKV safeguard fraction α that ran; NaN (an empty field) when none did. */
  safeguard: number;
  protocol: string;
  suite: string;
  task: string;
  /**
   * The task's options as canonical JSON, except `n` (how many samples, not what each is):
   * the context length asked (`targetTokens`), the task seed and any adapter option. Cells of
   * one task differ by them ("" in rows written before the column existed).
   */
  task_options: string;
  /** The task adapter's `version` (tasks/types.ts); NaN in rows written before the column. */
  task_version: number;
  /**
   * The SHA-256 of the file the task read (a loader's `path`, an essay haystack; comma-joined
   * when it reads several), as in the cell id: "" for a task that reads none, and in rows
   * written before the column that no sweep since has identified.
   */
  task_data: string;
  /**
   * What `budget` counts ({@linkcode BUDGET_KINDS}): "kept_ratio" or "context_tokens" (prefill
   * protocols), "entries_per_head" (decode).
   */
  budget_kind: string;
  budget: number;
  seed: number;
  /**
   * What else the cell id holds of the sweep and the method, as canonical JSON of the keys that
   * differ from a plain run: `window` (tokens, when not "spec"), `sampling` (when answers are
   * sampled), `methodVersion` (when the method declares one) and `artifacts` (what identifies
   * the method's own files, such as `gated`'s gate file). "" when none does, and in rows written
   * before the column that no sweep since has identified. Rows that differ in it are other
   * series.
   */
  settings: string;
  sample_id: string;
  /**
   * The sample's `meta` as canonical JSON: what the task knows about it (a needle's depths, a
   * LongBench row's `length` and `_id`, a middle cut), for breakdowns by it.
   */
  sample_meta: string;
  query_index: number;
  metric: string;
  score: number;
  /**
   * The kept ratio the compression asked: the budget itself for "kept_ratio"; for
   * "context_tokens", min(1, budget / the tokens it evicts from: the context, or context and
   * query under the query-aware protocol); NaN under the decode protocol.
   */
  kept_ratio_asked: number;
  kept_ratio_achieved: number;
  entries_kept: number;
  kv_bytes_held: number;
  /** What a full cache of the same tokens would hold. */
  kv_bytes_full: number;
  context_tokens: number;
  prompt_tokens: number;
  generated_tokens: number;
  /** Why generation stopped: eos, stop-string, max-new-tokens or max-positions. */
  stop_reason: string;
  prediction: string;
  /** Reference answers as a JSON array. */
  reference: string;
  /**
   * Mean negative log-likelihood per token (nats) of the first reference, teacher-forced on
   * the same cache after the query: a graded view of what eviction cost, beside the 0/1 score.
   * NaN under the decode protocol, for an empty reference, and in rows written before it.
   */
  answer_nll: number;
  prefill_ms: number;
  decode_ms_per_token: number;
  scoring_ms: number;
  selection_ms: number;
}

const NUMERIC: ReadonlySet<string> = new Set<RowColumn>([
  "task_version",
  "answer_nll",
  "safeguard",
  "budget",
  "seed",
  "query_index",
  "score",
  "kept_ratio_asked",
  "kept_ratio_achieved",
  "entries_kept",
  "kv_bytes_held",
  "kv_bytes_full",
  "context_tokens",
  "prompt_tokens",
  "generated_tokens",
  "prefill_ms",
  "decode_ms_per_token",
  "scoring_ms",
  "selection_ms",
]);

/** A column added after the first rows.csv, with the value rows written before it read as. */
interface AddedColumn {
  column: RowColumn;
  legacy: string | number;
}

/** Columns that one release of evictbench added to rows.csv. */
interface Release {
  columns: readonly AddedColumn[];
  /**
   * Whether the release also changed how cells are identified: a sweep cannot resume rows
   * written before it (their cell ids are not today's), so their stores are read, never upgraded.
   */
  newCellIds: boolean;
}

/** The releases that added columns since the first rows.csv, oldest first. */
const RELEASES: readonly Release[] = [
  { columns: [{ column: "task_options", legacy: "" }], newCellIds: true },
  { columns: [{ column: "task_version", legacy: NaN }], newCellIds: true },
  { columns: [{ column: "safeguard", legacy: NaN }], newCellIds: true },
  { columns: [{ column: "sample_meta", legacy: "" }], newCellIds: false },
  { columns: [{ column: "stop_reason", legacy: "" }], newCellIds: false },
  { columns: [{ column: "answer_nll", legacy: NaN }], newCellIds: false },
  {
    columns: [{ column: "task_data", legacy: "" }, { column: "settings", legacy: "" }],
    newCellIds: false,
  },
];

/** A header rows.csv has held: its columns, and those it lacks with the values they read as. */
interface Layout {
  columns: readonly RowColumn[];
  missing: readonly AddedColumn[];
  /** Whether a sweep may upgrade it and go on appending (its cell ids are today's). */
  upgradable: boolean;
}

/** Today's layout. */
const CURRENT_LAYOUT: Layout = { columns: ROW_COLUMNS, missing: [], upgradable: true };

/** The layouts of earlier rows.csv files, newest first: each lacks the columns added after it. */
const LEGACY_LAYOUTS: readonly Layout[] = RELEASES.map((_, i) => {
  const later = RELEASES.slice(RELEASES.length - 1 - i);
  const missing = later.flatMap((r) => r.columns);
  const names = new Set(missing.map((m) => m.column));
  return {
    columns: ROW_COLUMNS.filter((c) => !names.has(c)),
    missing,
    upgradable: later.every((r) => !r.newCellIds),
  };
});

/** The header line of a layout, as rows.csv holds it. */
function headerLine(layout: Layout): string {
  return stringify([layout.columns as unknown as string[]]);
}

/** The key that identifies a row across reruns. */
export function rowKey(row: Pick<ResultRow, "cell_id" | "sample_id" | "query_index">): string {
  return `${row.cell_id}\u0000${row.sample_id}\u0000${row.query_index}`;
}

/**
 * Throw an InputError naming the first row of `rows` whose key (cell, sample, query) repeats
 * an earlier one: a store the sweep wrote never holds one, so it was edited or joined by hand.
 */
export function checkUniqueRows(rows: readonly ResultRow[], path: string): void {
  const seen = new Set<string>();
  for (const row of rows) {
    const key = rowKey(row);
    if (seen.has(key)) {
      throw new InputError(
        `${path}: duplicate row (cell ${row.cell_id}, sample ${row.sample_id}, query ${row.query_index})`,
      );
    }
    seen.add(key);
  }
}

/** Serialise rows as CSV lines (no header); a NaN number (not applicable) is an empty field. */
export function rowsToCsv(rows: readonly ResultRow[]): string {
  return stringify(
    rows.map((r) =>
      ROW_COLUMNS.map((c) => {
        const v = r[c];
        return typeof v === "number" && Number.isNaN(v) ? "" : v;
      })
    ),
    { eof: true },
  );
}

/** Parse rows.csv text (with its header), checking the columns. */
export function parseRowsCsv(text: string, path = "rows.csv"): ResultRow[] {
  if (text.trim() === "") return [];
  let records: string[][];
  try {
    records = parse(text, { relax_column_count: false });
  } catch (error) {
    throw new InputError(`${path}: not valid CSV (${(error as Error).message.split("\n")[0]})`);
  }
  const [header, ...body] = records;
  const layout = [CURRENT_LAYOUT, ...LEGACY_LAYOUTS]
    .find((l) => header.join(",") === l.columns.join(","));
  if (layout === undefined) {
    throw new InputError(
      `${path}: unexpected header; expected the columns ${ROW_COLUMNS.join(",")}`,
    );
  }
  const { columns, missing } = layout;
  return body.map((fields, i) => {
    const row: Record<string, string | number> = {};
    for (const m of missing) row[m.column] = m.legacy;
    columns.forEach((c, j) => {
      const value = fields[j];
      if (NUMERIC.has(c)) {
        const n = value === "" ? NaN : Number(value);
        if (value !== "" && !Number.isFinite(n)) {
          throw new InputError(`${path}:${i + 2}: column ${c} should be a number, got "${value}"`);
        }
        row[c] = n;
      } else row[c] = value;
    });
    return row as unknown as ResultRow;
  });
}

/** A run directory's run.json (its provenance), or null when it has none. */
export async function readRunJson(dir: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new InputError(`${dir}/run.json: not valid JSON (${(error as Error).message})`);
  }
}

/** Write `value` as JSON to `path` atomically (temp file in the same directory, then rename). */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** Write `text` to `path` atomically (temp file in the same directory, fsync, rename). */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, new TextEncoder().encode(text));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** The file an upgrade writes before it replaces rows.csv. */
const UPGRADE_FILE = "rows.csv.upgrade";

/**
 * The steps of an upgrade to today's layout, in order: the upgraded rows written and fsynced to
 * rows.csv.upgrade; rows.commit naming that file; rows.csv replaced by it. rows.commit then
 * names rows.csv again.
 */
export type UpgradeStep = "written" | "committed" | "replaced";

/** Options of {@linkcode ResultsStore.open}. */
export interface OpenOptions {
  /**
   * When opening upgrades an older rows.csv: values, by cell id, for the columns it lacks (the
   * sweep runner passes the settings and task data of the cells it can prove its own). Called
   * once with the committed rows, the missing columns at their legacy values, and the names of
   * the missing columns; only those columns are taken from what it returns, so no value a row
   * holds changes. Absent: every missing column keeps its legacy value.
   */
  legacyValues?: (
    rows: readonly ResultRow[],
    missing: readonly RowColumn[],
  ) => Promise<Map<string, Partial<ResultRow>>>;
  /**
   * Called after each step of an upgrade. For tests: throwing from it stops the upgrade there,
   * as a kill would.
   */
  onUpgradeStep?: (step: UpgradeStep) => void | Promise<void>;
}

/**
 * The rows of one run directory: committed rows survive any kill; appends are batched.
 *
 * @example
 * ```ts
 * const store = await ResultsStore.open("runs/demo");
 * if (!store.has(row)) await store.append([row]);
 * ```
 */
export class ResultsStore {
  readonly dir: string;
  readonly #rowsPath: string;
  readonly #commitPath: string;
  readonly #keys: Set<string>;
  #committed: number;

  private constructor(dir: string, keys: Set<string>, committed: number) {
    this.dir = dir;
    this.#rowsPath = `${dir}/rows.csv`;
    this.#commitPath = `${dir}/rows.commit`;
    this.#keys = keys;
    this.#committed = committed;
  }

  /**
   * Open (creating if needed) the store in `dir`, rolling rows.csv back to its last committed
   * length. Fails with an InputError when the directory cannot be written.
   *
   * A rows.csv of an earlier layout whose cells are identified as today's is upgraded in place:
   * its committed rows, with the columns it lacks at their legacy values (or those
   * `options.legacyValues` gives), are written to rows.csv.upgrade and fsynced; rows.commit is
   * replaced by one naming that file and its length; the file is renamed over rows.csv; and
   * rows.commit names rows.csv again. A kill before the second step leaves rows.csv as it was
   * (the next open upgrades it again, overwriting the unused file); after it, the next open
   * finishes the rename and the commit. Readers follow rows.commit to whichever file holds the
   * committed rows. A layout from before today's cell ids is refused: its report builds, a sweep
   * cannot resume it.
   */
  static async open(dir: string, options: OpenOptions = {}): Promise<ResultsStore> {
    try {
      await Deno.mkdir(dir, { recursive: true });
      const probe = `${dir}/.write-probe`;
      await Deno.writeTextFile(probe, "");
      await Deno.remove(probe);
    } catch (error) {
      throw new InputError(`${dir}: cannot write the run directory (${(error as Error).message})`);
    }
    const rowsPath = `${dir}/rows.csv`;
    const commitPath = `${dir}/rows.commit`;
    const upgradePath = `${dir}/${UPGRADE_FILE}`;
    const commit = await readCommit(dir);
    let committed: number;
    if (commit === null) {
      // A new run directory. rows.csv without rows.commit is someone's results: never reset them.
      const held = await fileSize(rowsPath);
      if (held !== null && held > 0) {
        throw new InputError(
          `${dir}/rows.commit is missing but rows.csv holds ${held} bytes of rows: nothing was ` +
            "changed; to keep every complete row, write rows.csv's byte length into rows.commit",
        );
      }
      const header = headerLine(CURRENT_LAYOUT);
      await writeTextAtomic(rowsPath, header);
      committed = new TextEncoder().encode(header).length;
      await writeTextAtomic(commitPath, `${committed}\n`);
    } else {
      // A kill after an upgrade's commit: finish its rename (unless done) and its last commit.
      // (Before that commit, rows.csv is as it was: the upgrade starts again, writing its file
      // anew.)
      if (commit.upgrading) {
        if (commit.path === upgradePath) await Deno.rename(upgradePath, rowsPath);
        await writeTextAtomic(commitPath, `${commit.length}\n`);
      }
      const layout = await layoutOf(rowsPath);
      if (layout === CURRENT_LAYOUT) {
        // Drop anything a killed run wrote after its last commit.
        const file = await Deno.open(rowsPath, { write: true });
        try {
          await file.truncate(commit.length);
        } finally {
          file.close();
        }
        committed = commit.length;
      } else if (layout.upgradable) {
        committed = await upgrade(dir, { length: commit.length, layout }, options);
      } else {
        const missing = layout.missing.map((m) => m.column);
        throw new InputError(
          `${rowsPath}: written by an earlier evictbench (no ${missing.join(" or ")} column), ` +
            "whose cells were identified otherwise; its report still builds, but a sweep cannot " +
            "add to it: choose another --out",
        );
      }
    }
    const rows = parseRowsCsv(await Deno.readTextFile(rowsPath), rowsPath);
    return new ResultsStore(dir, new Set(rows.map(rowKey)), committed);
  }

  /** Number of committed rows. */
  get size(): number {
    return this.#keys.size;
  }

  /** Whether a row with this key is committed. */
  has(row: Pick<ResultRow, "cell_id" | "sample_id" | "query_index">): boolean {
    return this.#keys.has(rowKey(row));
  }

  /**
   * Append a batch: written and fsynced, then committed atomically. Rows whose key is already
   * committed are skipped (a rerun never duplicates).
   */
  async append(rows: readonly ResultRow[]): Promise<number> {
    const fresh = rows.filter((r) => !this.has(r));
    if (fresh.length === 0) return 0;
    const bytes = new TextEncoder().encode(rowsToCsv(fresh));
    const file = await Deno.open(this.#rowsPath, { write: true });
    try {
      await file.seek(this.#committed, Deno.SeekMode.Start);
      await writeAll(file, bytes);
      await file.sync();
    } finally {
      file.close();
    }
    await writeTextAtomic(this.#commitPath, `${this.#committed + bytes.length}\n`);
    this.#committed += bytes.length;
    for (const r of fresh) this.#keys.add(rowKey(r));
    return fresh.length;
  }

  /** All committed rows. */
  rows(): Promise<ResultRow[]> {
    return readRunRows(this.dir);
  }
}

/**
 * Rewrite the first `length` bytes of `dir`'s rows.csv, of layout `layout`, in today's layout
 * (the steps {@linkcode ResultsStore.open} describes); returns the committed length after it.
 */
async function upgrade(
  dir: string,
  { length, layout }: { length: number; layout: Layout },
  options: OpenOptions,
): Promise<number> {
  const rowsPath = `${dir}/rows.csv`;
  const upgradePath = `${dir}/${UPGRADE_FILE}`;
  const held = await Deno.readFile(rowsPath);
  const rows = parseRowsCsv(new TextDecoder().decode(held.subarray(0, length)), rowsPath);
  const missing = layout.missing.map((m) => m.column);
  const known = await options.legacyValues?.(rows, missing) ?? new Map();
  for (const row of rows) {
    const values = known.get(row.cell_id);
    if (values === undefined) continue;
    const target = row as unknown as Record<string, unknown>;
    for (const column of missing) if (column in values) target[column] = values[column];
  }
  const bytes = new TextEncoder().encode(headerLine(CURRENT_LAYOUT) + rowsToCsv(rows));
  const file = await Deno.open(upgradePath, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, bytes);
    await file.sync();
  } finally {
    file.close();
  }
  await options.onUpgradeStep?.("written");
  await writeTextAtomic(`${dir}/rows.commit`, `${bytes.length} ${UPGRADE_FILE}\n`);
  await options.onUpgradeStep?.("committed");
  await Deno.rename(upgradePath, rowsPath);
  await options.onUpgradeStep?.("replaced");
  await writeTextAtomic(`${dir}/rows.commit`, `${bytes.length}\n`);
  return bytes.length;
}

/**
 * The layout of the rows.csv at `path`, from its header; an InputError for a header evictbench
 * never wrote.
 */
async function layoutOf(path: string): Promise<Layout> {
  const longest = new TextEncoder().encode(headerLine(CURRENT_LAYOUT)).length;
  const file = await Deno.open(path, { read: true });
  let start: string;
  try {
    const bytes = new Uint8Array(longest);
    let n = 0;
    while (n < longest) {
      const read = await file.read(bytes.subarray(n));
      if (read === null) break;
      n += read;
    }
    start = new TextDecoder().decode(bytes.subarray(0, n));
  } finally {
    file.close();
  }
  if (start === headerLine(CURRENT_LAYOUT)) return CURRENT_LAYOUT;
  const legacy = LEGACY_LAYOUTS.find((l) => start.startsWith(headerLine(l)));
  if (legacy !== undefined) return legacy;
  throw new InputError(
    `${path}: unexpected header; expected the columns ${ROW_COLUMNS.join(",")}`,
  );
}

/** Size of the file at `path` in bytes, or null when there is none. */
async function fileSize(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** What rows.commit says: the committed byte length of the file that holds the rows. */
interface Commit {
  length: number;
  /** The file those bytes are in: rows.csv, or rows.csv.upgrade while an upgrade is under way. */
  path: string;
  /** Whether rows.commit names an upgrade that a kill interrupted. */
  upgrading: boolean;
}

/**
 * What `dir`'s rows.commit says, or null for a directory without one. rows.commit holds the
 * committed length of rows.csv (`123456`), or while an upgrade is under way that of its file
 * (`123789 rows.csv.upgrade`), which is rows.csv once renamed over it. A length that the file
 * does not hold (missing, replaced or truncated) is an InputError, so nothing is read past it or
 * written over it.
 */
async function readCommit(dir: string): Promise<Commit | null> {
  const path = `${dir}/rows.commit`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    if (error instanceof Deno.errors.NotADirectory) {
      throw new InputError(`${dir}: not a directory (expected an evictbench run directory)`);
    }
    throw new InputError(`${path}: cannot read (${(error as Error).message})`);
  }
  const [count, file, ...rest] = text.trim().split(" ");
  const n = Number(count);
  const upgrading = file === UPGRADE_FILE;
  if (!Number.isInteger(n) || n < 0 || (file !== undefined && !upgrading) || rest.length > 0) {
    throw new InputError(
      `${path}: expected the committed byte length of rows.csv, got "${text.trim()}"`,
    );
  }
  const rowsPath = `${dir}/rows.csv`;
  const upgradePath = `${dir}/${UPGRADE_FILE}`;
  if (upgrading) {
    const pending = await fileSize(upgradePath);
    if (pending !== null) {
      if (n > pending) {
        throw new InputError(
          `${path}: says ${n} bytes of ${UPGRADE_FILE} are committed, but it holds ${pending}; ` +
            "nothing was changed",
        );
      }
      return { length: n, path: upgradePath, upgrading };
    }
    // Renamed over rows.csv already, unless something else removed it.
    const held = await fileSize(rowsPath);
    if (held === null || n > held || (await layoutOf(rowsPath)) !== CURRENT_LAYOUT) {
      throw new InputError(
        `${path}: names ${UPGRADE_FILE}, which is missing, and rows.csv is not its upgrade; ` +
          "nothing was changed",
      );
    }
    return { length: n, path: rowsPath, upgrading };
  }
  const held = await fileSize(rowsPath);
  if (held === null) {
    throw new InputError(
      `${dir}/rows.csv is missing, yet rows.commit says ${n} bytes are committed`,
    );
  }
  if (n > held) {
    throw new InputError(
      `${path}: says ${n} bytes of rows.csv are committed, but rows.csv holds ${held} ` +
        "(was it replaced or truncated?); nothing was changed",
    );
  }
  return { length: n, path: rowsPath, upgrading };
}

/**
 * Read a run directory's committed rows without opening it for writing: an older layout is read
 * as it is, and an upgrade a kill interrupted is read from where rows.commit says, neither
 * rewritten. Without rows.commit (rows.csv copied on its own) every row of rows.csv is read.
 */
export async function readRunRows(dir: string): Promise<ResultRow[]> {
  const commit = await readCommit(dir);
  const path = commit?.path ?? `${dir}/rows.csv`;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new InputError(`${dir}: no rows.csv (expected an evictbench run directory)`);
    }
    throw new InputError(`${path}: cannot read (${(error as Error).message})`);
  }
  const text = new TextDecoder().decode(bytes.subarray(0, commit?.length ?? bytes.length));
  return parseRowsCsv(text, path);
}
