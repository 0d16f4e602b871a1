/**
 * A small seedable random source (sfc32, seeded through splitmix32). Generation passes one in
 * explicitly, so the same seed always gives the same draws; Math.random is never used where
 * results must be reproducible.
 */
export interface RandomSource {
  /** Uniform float in [0, 1). */
  next(): number;
}

export function seededRandom(seed: number): RandomSource {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  // splitmix32 spreads nearby seeds (1, 2, 3…) into unrelated initial states.
  let s = (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const next = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 2 ** 32;
  };
  // Discard a few outputs so the state is well mixed before first use.
  for (let i = 0; i < 12; i++) next();
  return { next };
}
