/**
 * Test assertions for evictbench (JSR's @std/assert cannot be reached, so these wrap
 * node:assert with the std names and messages our tests use).
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

/** Fail unless `condition` is truthy. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new nodeAssert.AssertionError({ message });
}

/** Deep, strict equality (typed arrays, maps and nested objects included). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Fail unless |actual − expected| ≤ tolerance. */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  message?: string,
): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new nodeAssert.AssertionError({
      message: message ??
        `expected ${actual} to be within ${tolerance} of ${expected} (off by ${
          Math.abs(actual - expected)
        })`,
    });
  }
}

/** Fail unless max |actual − expected| / max(|expected|, floor) ≤ rel, element by element. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rel: number,
  floor = 1e-6,
): void {
  assertEquals(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor);
    assert(err <= rel, `element ${i}: got ${actual[i]}, expected ${expected[i]} (rel err ${err})`);
  }
}

/** Fail unless `fn` throws an instance of `ErrorClass` whose message includes `includes`. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E = Error as never,
  includes?: string,
): E {
  try {
    fn();
  } catch (error) {
    return checkError(error, ErrorClass, includes);
  }
  throw new nodeAssert.AssertionError({ message: `expected ${ErrorClass.name} to be thrown` });
}

/** Async form of {@linkcode assertThrows}. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E = Error as never,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    return checkError(error, ErrorClass, includes);
  }
  throw new nodeAssert.AssertionError({ message: `expected ${ErrorClass.name} to be rejected` });
}

function checkError<E extends Error>(
  error: unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass: new (...args: any[]) => E,
  includes?: string,
): E {
  if (!(error instanceof ErrorClass)) {
    throw new nodeAssert.AssertionError({
      message: `expected ${ErrorClass.name}, got ${
        error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      }`,
    });
  }
  if (includes !== undefined && !error.message.includes(includes)) {
    throw new nodeAssert.AssertionError({
      message: `expected the message to include "${includes}", got "${error.message}"`,
    });
  }
  return error;
}
