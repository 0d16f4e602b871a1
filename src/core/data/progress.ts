/**
 * One updating progress line on a terminal: rows read, rows/s and, when the work can be
 * estimated, the share done and an ETA. Quiet when the stream is not a TTY (CI, pipes, tests),
 * so logs never fill with carriage returns.
 */

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface Progress {
  /** Rows read so far and, when known, the share of the work done (0…1). */
  update(rows: number, fraction?: number): void;
  /** Clears the line (the caller prints the summary). */
  done(): void;
}

export interface ProgressOptions {
  stream?: ProgressStream;
  label?: string;
  /** Minimum time between redraws. */
  intervalMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const QUIET: Progress = { update() {}, done() {} };

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

/** A progress line on `stream` (default process.stderr), or a no-op when it is not a TTY. */
export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (!stream.isTTY) return QUIET;
  const now = options.now ?? (() => performance.now());
  const interval = options.intervalMs ?? 250;
  const label = options.label ?? "rows";
  const started = now();
  let last = Number.NEGATIVE_INFINITY;
  let shown = false;
  return {
    update(rows, fraction) {
      const t = now();
      if (t - last < interval) return;
      last = t;
      const elapsed = (t - started) / 1000;
      const rate = elapsed > 0 ? rows / elapsed : 0;
      let line = `${label}: ${formatCount(rows)} read, ${formatCount(Math.round(rate))}/s`;
      if (fraction !== undefined && fraction > 0 && fraction <= 1) {
        const eta = (elapsed * (1 - fraction)) / fraction;
        line += `, ${(fraction * 100).toFixed(1)}%, ETA ${formatDuration(eta)}`;
      }
      const width = Math.max(20, (stream.columns || 100) - 1);
      stream.write(`\r${line.slice(0, width)}\u001b[K`);
      shown = true;
    },
    done() {
      if (shown) stream.write("\r\u001b[K");
      shown = false;
    },
  };
}
