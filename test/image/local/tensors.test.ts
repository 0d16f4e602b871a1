import { describe, expect, it } from "vitest";
import {
  fromHalf,
  fromHalfBits,
  gaussianSource,
  toHalf,
  toHalfBits,
} from "../../../src/core/image/local/tensors.js";

describe("float16 at the session boundary", () => {
  it("rounds to the nearest half as numpy's astype(float16) does", () => {
    // Expected bits from numpy: np.float32(v).astype(np.float16).view(np.uint16).
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [0.333333, 0x3555],
      [1e-4, 0x068e],
      [3e-5, 0x01f7], // subnormal
      [6e-8, 0x0001], // smallest subnormal
      [1e-8, 0x0000], // underflow
      [2.9802322387695312e-8, 0x0000], // exactly half the smallest subnormal: ties to even (0)
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00], // overflow → Inf
      [-0, 0x8000],
    ];
    for (const [value, bits] of cases) expect([value, toHalfBits(value)]).toEqual([value, bits]);
    expect(toHalfBits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(toHalfBits(Number.NaN) & 0x3ff).not.toBe(0);
  });

  it("reads halves back exactly, subnormals and infinities included", () => {
    expect(fromHalfBits(0x3c00)).toBe(1);
    expect(fromHalfBits(0x2e66)).toBeCloseTo(0.0999755859375, 12);
    expect(fromHalfBits(0x0001)).toBe(2 ** -24);
    expect(fromHalfBits(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(fromHalfBits(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(Number.isNaN(fromHalfBits(0x7e00))).toBe(true);
    const values = Float32Array.of(0.5, -3.25, 1024, 2 ** -20);
    expect(Array.from(fromHalf(toHalf(values)))).toEqual(Array.from(values));
  });
});

describe("seeded Gaussian noise", () => {
  it("is the same for the same seed and differs between seeds", () => {
    const a = gaussianSource(42)(1000);
    expect(Array.from(gaussianSource(42)(1000))).toEqual(Array.from(a));
    expect(Array.from(gaussianSource(43)(1000))).not.toEqual(Array.from(a));
    // Draws continue the stream rather than restarting it.
    const stream = gaussianSource(42);
    expect(Array.from(stream(1000))).toEqual(Array.from(a));
    expect(Array.from(stream(10))).not.toEqual(Array.from(a.subarray(0, 10)));
  });

  it("has zero mean and unit variance", () => {
    const draws = gaussianSource(7)(200_000);
    const mean = draws.reduce((sum, x) => sum + x, 0) / draws.length;
    const variance = draws.reduce((sum, x) => sum + (x - mean) ** 2, 0) / draws.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.01);
    expect(draws.every(Number.isFinite)).toBe(true);
  });
});
