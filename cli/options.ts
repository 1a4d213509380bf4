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
