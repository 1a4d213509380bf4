/**
 * The results store of one run directory:
 *
 * - `rows.csv`: one row per query × cell, appended in batches. Each batch is written, fsynced,
 *   and then committed by atomically replacing `rows.commit` (the byte length of the committed
 *   rows). Opening the store truncates anything past that length, so a run killed mid-write
 *   loses at most its last uncommitted batch and never leaves a half-written row.
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
  "budget_kind",
  "budget",
  "seed",
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
   * What `budget` counts ({@linkcode BUDGET_KINDS}): "kept_ratio" or "context_tokens" (prefill
   * protocols), "entries_per_head" (decode).
   */
  budget_kind: string;
  budget: number;
  seed: number;
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

/** Columns added since the first rows.csv, oldest first. */
const ADDED_COLUMNS: readonly AddedColumn[] = [
  { column: "task_options", legacy: "" },
  { column: "task_version", legacy: NaN },
  { column: "safeguard", legacy: NaN },
  { column: "sample_meta", legacy: "" },
  { column: "stop_reason", legacy: "" },
  { column: "answer_nll", legacy: NaN },
];

/**
 * The headers of earlier rows.csv files, newest first: each lacks the columns added after it.
 * They are read (the missing columns take their legacy values), never appended to.
 */
const LEGACY_LAYOUTS: readonly {
  columns: readonly RowColumn[];
  missing: readonly AddedColumn[];
}[] = ADDED_COLUMNS.map((_, i) => {
  const missing = ADDED_COLUMNS.slice(ADDED_COLUMNS.length - 1 - i);
  const names = new Set(missing.map((m) => m.column));
  return { columns: ROW_COLUMNS.filter((c) => !names.has(c)), missing };
});

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
  const layout = [{ columns: ROW_COLUMNS, missing: [] }, ...LEGACY_LAYOUTS]
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
   */
  static async open(dir: string): Promise<ResultsStore> {
    try {
      await Deno.mkdir(dir, { recursive: true });
      const probe = `${dir}/.write-probe`;
      await Deno.writeTextFile(probe, "");
      await Deno.remove(probe);
    } catch (error) {
      throw new InputError(`${dir}: cannot write the run directory (${(error as Error).message})`);
    }
    const rowsPath = `${dir}/rows.csv`;
    const header = stringify([ROW_COLUMNS as unknown as string[]]);
    let committed = await committedLength(dir);
    if (committed === null) {
      // A new run directory. rows.csv without rows.commit is someone's results: never reset them.
      const held = await fileSize(rowsPath);
      if (held !== null && held > 0) {
        throw new InputError(
          `${dir}/rows.commit is missing but rows.csv holds ${held} bytes of rows: nothing was ` +
            "changed; to keep every complete row, write rows.csv's byte length into rows.commit",
        );
      }
      await writeTextAtomic(rowsPath, header);
      committed = new TextEncoder().encode(header).length;
      await writeTextAtomic(`${dir}/rows.commit`, `${committed}\n`);
    } else {
      await refuseLegacy(rowsPath, header);
      // Drop anything a killed run wrote after its last commit.
      const file = await Deno.open(rowsPath, { write: true });
      try {
        await file.truncate(committed);
      } finally {
        file.close();
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
 * Refuse, before anything is written, to extend a rows.csv whose header is not today's: rows
 * from before the task_options, task_version or safeguard column can be read (the report builds)
 * but not appended to: their cells were identified otherwise, so a resume would not find them.
 */
async function refuseLegacy(rowsPath: string, header: string): Promise<void> {
  const file = await Deno.open(rowsPath, { read: true });
  let start: string;
  try {
    const bytes = new Uint8Array(new TextEncoder().encode(header).length);
    const n = await file.read(bytes);
    start = new TextDecoder().decode(bytes.subarray(0, n ?? 0));
  } finally {
    file.close();
  }
  if (start === header) return;
  const legacy = LEGACY_LAYOUTS.find((l) => start.startsWith(`${l.columns.join(",")}\n`));
  if (legacy !== undefined) {
    const missing = legacy.missing.map((m) => m.column);
    throw new InputError(
      `${rowsPath}: written by an earlier evictbench (no ${missing.join(" or ")} column); its ` +
        "report still builds, but a sweep cannot add to it: choose another --out",
    );
  }
  throw new InputError(
    `${rowsPath}: unexpected header; expected the columns ${ROW_COLUMNS.join(",")}`,
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

/**
 * The committed byte length of `dir`'s rows.csv, from rows.commit, or null for a directory
 * without rows.commit. A length that rows.csv does not hold (rows.csv missing, replaced or
 * truncated) is an InputError, so nothing is read past it or written over it.
 */
async function committedLength(dir: string): Promise<number | null> {
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
  const n = Number(text.trim());
  if (!Number.isInteger(n) || n < 0) {
    throw new InputError(
      `${path}: expected the committed byte length of rows.csv, got "${text.trim()}"`,
    );
  }
  const held = await fileSize(`${dir}/rows.csv`);
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
  return n;
}

/**
 * Read a run directory's committed rows without opening it for writing. Without rows.commit
 * (rows.csv copied on its own) every row of rows.csv is read.
 */
export async function readRunRows(dir: string): Promise<ResultRow[]> {
  const committed = await committedLength(dir);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(`${dir}/rows.csv`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new InputError(`${dir}: no rows.csv (expected an evictbench run directory)`);
    }
    throw new InputError(`${dir}/rows.csv: cannot read (${(error as Error).message})`);
  }
  const text = new TextDecoder().decode(bytes.subarray(0, committed ?? bytes.length));
  return parseRowsCsv(text, `${dir}/rows.csv`);
}
