/**
 * The few distribution functions the statistics need, written out so that they are exact to
 * double precision: the standard normal CDF and tail, log-factorials, and an exact binomial
 * sampler (used to resample category counts in the bootstrap), and the type 7 quantile.
 */
import type { RandomSource } from "../random.js";

const LN_SQRT_2PI = 0.9189385332046728; // ln √(2π)

/**
 * Upper tail of the standard normal, Q(x) = 1 − Φ(x), with full relative precision in the tail.
 * |x| ≤ 2: Marsaglia's series Φ(x) = ½ + φ(x)·(x + x³/3 + x⁵/(3·5) + …) (all terms one sign).
 * |x| > 2: Laplace's continued fraction Q(x) = φ(x) / (x + 1/(x + 2/(x + 3/(x + …)))).
 */
export function normalSf(x: number): number {
  if (Number.isNaN(x)) throw new RangeError("normalSf of NaN");
  if (x === Number.POSITIVE_INFINITY) return 0;
  if (x === Number.NEGATIVE_INFINITY) return 1;
  const a = Math.abs(x);
  let tail: number; // Q(|x|)
  if (a <= 2) {
    let sum = a;
    let term = a;
    let previous = 0;
    const square = a * a;
    for (let i = 1; sum !== previous; ) {
      previous = sum;
      i += 2;
      term *= square / i;
      sum = previous + term;
    }
    tail = 0.5 - sum * Math.exp(-0.5 * square - LN_SQRT_2PI);
  } else {
    // Backward evaluation of the continued fraction; 300 terms reach double precision from x = 1.5 up.
    let fraction = a;
    for (let k = 300; k >= 1; k--) fraction = a + k / fraction;
    tail = Math.exp(-0.5 * a * a - LN_SQRT_2PI) / fraction;
  }
  return x >= 0 ? tail : 1 - tail;
}

/** Standard normal CDF Φ(x). */
export function normalCdf(x: number): number {
  return normalSf(-x);
}

/** Two-sided p-value of a standard normal statistic: 2·Q(|z|), at most 1. */
export function twoSidedP(z: number): number {
  return Math.min(1, 2 * normalSf(Math.abs(z)));
}

const LN_FACTORIAL_TABLE_SIZE = 1024;
const lnFactorialTable = (() => {
  const table = new Float64Array(LN_FACTORIAL_TABLE_SIZE);
  for (let n = 2; n < LN_FACTORIAL_TABLE_SIZE; n++) {
    table[n] = (table[n - 1] as number) + Math.log(n);
  }
  return table;
})();

/** ln(n!) for a non-negative integer n (table below 1024, Stirling's series above). */
export function lnFactorial(n: number): number {
  if (!Number.isInteger(n) || n < 0)
    throw new RangeError(`lnFactorial needs an integer ≥ 0, got ${n}`);
  if (n < LN_FACTORIAL_TABLE_SIZE) return lnFactorialTable[n] as number;
  const inverse = 1 / n;
  const inverse2 = inverse * inverse;
  return (
    n * Math.log(n) -
    n +
    0.5 * Math.log(2 * Math.PI * n) +
    inverse * (1 / 12 - inverse2 * (1 / 360 - inverse2 * (1 / 1260 - inverse2 / 1680)))
  );
}

/**
 * One draw from Binomial(n, p): inversion by "chop-down" search outward from the mode, so the
 * expected work is O(√(np(1−p))) and the draw follows the binomial distribution exactly (up to
 * the rounding of its probabilities).
 */
export function sampleBinomial(n: number, p: number, random: RandomSource): number {
  if (n === 0 || p <= 0) return 0;
  if (p >= 1) return n;
  const mode = Math.min(n, Math.floor((n + 1) * p));
  const pmfMode = Math.exp(
    lnFactorial(n) -
      lnFactorial(mode) -
      lnFactorial(n - mode) +
      mode * Math.log(p) +
      (n - mode) * Math.log1p(-p),
  );
  const odds = p / (1 - p);
  for (;;) {
    let u = random.next() - pmfMode;
    if (u < 0) return mode;
    let low = mode;
    let high = mode;
    let pmfLow = pmfMode;
    let pmfHigh = pmfMode;
    while (low > 0 || high < n) {
      if (low > 0) {
        pmfLow *= low / ((n - low + 1) * odds); // pmf(low − 1) from pmf(low)
        low--;
        u -= pmfLow;
        if (u < 0) return low;
      }
      if (high < n) {
        pmfHigh *= ((n - high) * odds) / (high + 1); // pmf(high + 1) from pmf(high)
        high++;
        u -= pmfHigh;
        if (u < 0) return high;
      }
    }
    // Rounding left a sliver of probability unassigned: draw again (exact rejection).
  }
}

/** Hyndman–Fan type 7 quantile of ascending values (R's and NumPy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const h = (sorted.length - 1) * q;
  const low = Math.floor(h);
  const high = Math.min(low + 1, sorted.length - 1);
  const a = sorted[low] as number;
  return a + (h - low) * ((sorted[high] as number) - a);
}
