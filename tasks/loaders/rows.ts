/**
 * Reading benchmark files row by row: JSON Lines (one object per line), Parquet (via
 * hyparquet, with snappy, gzip, zstd, brotli and lz4 pages) and JSON arrays. Every row carries
 * where it came from (`file:line` for JSONL, `file:row N` for Parquet and JSON arrays, N counted
 * from 0 as pandas does), and the field readers turn a missing or mistyped field into a one-line
 * {@linkcode InputError} that names that place and the field.
 *
 * @module
 */

import { parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { InputError } from "../../errors.ts";

/** One record of a benchmark file. */
export interface Row {
  /** "data.jsonl:12" or "data.parquet:row 3". */
  where: string;
  /** The record's fields. */
  fields: Record<string, unknown>;
}

/** The file formats the loaders read. */
export type RowFormat = "jsonl" | "parquet" | "json";

/** The format a path's extension names. */
export function formatOf(path: string): RowFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  if (lower.endsWith(".parquet")) return "parquet";
  if (lower.endsWith(".json")) return "json";
  throw new InputError(`${path}: unknown file type; expected .jsonl, .parquet or .json`);
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new InputError(`${path}: no such file`);
    throw error;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The rows of a JSON Lines file; blank lines are skipped. */
export async function readJsonl(path: string): Promise<Row[]> {
  const text = await readText(path);
  const rows: Row[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    if (line.trim() === "") continue;
    const where = `${path}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new InputError(
        `${where}: malformed JSON (${(error as Error).message}); expected one object per line`,
      );
    }
    if (!isRecord(value)) throw new InputError(`${where}: expected a JSON object per line`);
    rows.push({ where, fields: value });
  }
  return rows;
}

/** Parquet INT64 comes back as BigInt: make safe integers plain numbers, recursively. */
function plain(value: unknown): unknown {
  if (typeof value === "bigint") {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (Array.isArray(value)) return value.map(plain);
  if (isRecord(value) && !(value instanceof Date) && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** The rows of a Parquet file. */
export async function readParquet(path: string): Promise<Row[]> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new InputError(`${path}: no such file`);
    throw error;
  }
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let objects: Record<string, unknown>[];
  try {
    objects = await parquetReadObjects({ file: file as ArrayBuffer, compressors });
  } catch (error) {
    throw new InputError(`${path}: not a readable Parquet file (${(error as Error).message})`);
  }
  return objects.map((fields, i) => ({
    where: `${path}:row ${i}`,
    fields: plain(fields) as Record<string, unknown>,
  }));
}

/** The rows of a JSON file holding an array of objects (or `{"data": [...]}`). */
export async function readJsonArray(path: string): Promise<Row[]> {
  const text = await readText(path);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path}: malformed JSON (${(error as Error).message})`);
  }
  const list = Array.isArray(value) ? value : isRecord(value) ? value.data : undefined;
  if (!Array.isArray(list)) {
    throw new InputError(`${path}: expected a JSON array of objects or {"data": [...]}`);
  }
  return list.map((fields, i) => {
    const where = `${path}:row ${i}`;
    if (!isRecord(fields)) throw new InputError(`${where}: expected an object`);
    return { where, fields };
  });
}

/** The rows of `path`, read by its extension. */
export function readRows(path: string): Promise<Row[]> {
  const format = formatOf(path);
  if (format === "jsonl") return readJsonl(path);
  if (format === "parquet") return readParquet(path);
  return readJsonArray(path);
}

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return `a ${typeof value}`;
}

/** A required string field. */
export function stringField(row: Row, field: string): string {
  const value = row.fields[field];
  if (typeof value !== "string") {
    throw new InputError(`${row.where}: field "${field}" is ${describe(value)}; expected a string`);
  }
  return value;
}

/** A required field that is a string or a number (ids, answers such as AIME's integers). */
export function textField(row: Row, field: string): string {
  const value = row.fields[field];
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value !== "string") {
    throw new InputError(
      `${row.where}: field "${field}" is ${describe(value)}; expected a string or number`,
    );
  }
  return value;
}

/** A required list-of-strings field. */
export function stringListField(row: Row, field: string): string[] {
  const value = row.fields[field];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new InputError(
      `${row.where}: field "${field}" is ${describe(value)}; expected a list of strings`,
    );
  }
  return value;
}

/** A required list field (elements unchecked). */
export function listField(row: Row, field: string): unknown[] {
  const value = row.fields[field];
  if (!Array.isArray(value)) {
    throw new InputError(`${row.where}: field "${field}" is ${describe(value)}; expected a list`);
  }
  return value;
}

/** The first of `fields` present on the row, as text; error naming them all when none is. */
export function firstTextField(row: Row, fields: readonly string[]): string {
  for (const field of fields) {
    if (row.fields[field] !== undefined && row.fields[field] !== null) return textField(row, field);
  }
  throw new InputError(
    `${row.where}: none of the fields ${fields.map((f) => `"${f}"`).join(", ")} is present`,
  );
}

/** An optional field: undefined when absent or null. */
export function optionalField(row: Row, field: string): unknown {
  const value = row.fields[field];
  return value === null ? undefined : value;
}

/** The file's name without folders and extension ("…/scbench_kv.parquet" → "scbench_kv"). */
export function fileStem(path: string): string {
  const name = path.split(/[\\/]/).at(-1)!;
  const dot = name.indexOf(".");
  return dot > 0 ? name.slice(0, dot) : name;
}

/** The name of the folder holding the file ("…/niah_single_1/validation.jsonl" → "niah_single_1"). */
export function parentName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts.length >= 2 ? parts.at(-2)! : "";
}
