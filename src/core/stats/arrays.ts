/** Small array helpers shared by the statistics modules (not part of the stats API). */

export function increment(array: Int32Array | Float64Array, index: number): void {
  array[index] = (array[index] as number) + 1;
}

/** The distinct values, in first-seen order. */
export function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
