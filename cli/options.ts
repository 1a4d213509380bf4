/**
 * Option parsers shared by the CLI's commands.
 *
 * @module
 */

import { InvalidArgumentError } from "commander";

/** Parse a positive integer option, naming the option on failure. */
export function positiveInt(name: string): (value: string) => number {
  return function parse(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} expects a positive integer, got "${value}"`);
    }
    return n;
  };
}

/** Parse a non-negative integer option, naming the option on failure. */
export function nonNegativeInt(name: string): (value: string) => number {
  return function parse(value: string): number {
    const n = Number(value);
    if (value.trim() === "" || !Number.isInteger(n) || n < 0) {
      throw new InvalidArgumentError(`${name} expects a non-negative integer, got "${value}"`);
    }
    return n;
  };
}

/**
 * A repeatable option of numbers, each value space- or comma-separated, naming the option and
 * the item that is not a number on failure. Ranges are the config schema's to check.
 */
export function numberList(name: string): (value: string, previous?: number[]) => number[] {
  return function parse(value: string, previous: number[] = []): number[] {
    const items = value.split(",").map((v) => v.trim()).filter((v) => v !== "");
    return [
      ...previous,
      ...items.map((item) => {
        const n = Number(item);
        if (!Number.isFinite(n)) {
          throw new InvalidArgumentError(`${name} expects numbers, got "${item}"`);
        }
        return n;
      }),
    ];
  };
}

/**
 * A repeatable option of whole numbers ≥ `min`, each value space- or comma-separated, naming
 * the option and the item that is not one on failure.
 */
export function integerList(
  name: string,
  min: number,
): (value: string, previous?: number[]) => number[] {
  const numbers = numberList(name);
  return function parse(value: string, previous: number[] = []): number[] {
    const parsed = numbers(value);
    const bad = parsed.find((n) => !Number.isInteger(n) || n < min);
    if (bad !== undefined) {
      throw new InvalidArgumentError(`${name} expects whole numbers ≥ ${min}, got "${bad}"`);
    }
    return [...previous, ...parsed];
  };
}

/** Parse a number option, naming the option on failure. */
export function finiteNumber(name: string): (value: string) => number {
  return function parse(value: string): number {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) {
      throw new InvalidArgumentError(`${name} expects a number, got "${value}"`);
    }
    return n;
  };
}
