/**
 * Several image backends behind one ImageBackend (two AUTOMATIC1111 boxes and a ComfyUI, say).
 *
 * Routing: each render goes to a backend that is in rotation and has a free slot. Backends are
 * tried in a weighted random order (weight 3 gets about three times the renders of weight 1
 * while both have room), so a full or busy backend passes the render to the next. With none
 * free, the render waits for a slot (a local release, a backend coming back, or, when slots are
 * shared through Redis, a look every pollMs), for as long as its signal (the job's deadline)
 * allows.
 *
 * Health: a backend whose render failed through its own fault (unreachable, timed out, HTTP 5xx)
 * leaves rotation and the render is retried on another backend it has not tried yet. The failed
 * backend gets a health call (src/core/image/health.ts) after backoffBaseMs, doubling per
 * consecutive failure up to backoffMaxMs; it rejoins when the call answers, and its failure count
 * resets on its next successful render. Backends in rotation are health-checked every
 * healthIntervalMs too, so a dead one leaves before a render finds out. A failure that is the
 * request's (HTTP 4xx, a body that is not an image, an abort) is thrown at once; a busy server
 * (429, 503 with a wait hint) passes the render on without leaving rotation.
 *
 * When a render has tried every backend, the last backend's error is thrown (it names the
 * status). When no backend is in rotation at all, AllBackendsDownError names each one, why it
 * is out and when it is checked again.
 */
import { BotError, ConfigError } from "../errors.js";
import { abortedError, isRetryableError, RemoteCallError } from "../retry.js";
import type { ImageBackend, ImageRequest, Logger, RenderedImage } from "../types.js";
import { type BackendCapacity, type CapacityLease, memoryCapacity } from "./capacity.js";
import { BackendBusyError } from "./http.js";

export interface PoolMember {
  /** Unique in the pool; named in logs, errors and doctor. */
  name: string;
  /** The shared slots' key for this server; default the name. */
  slotKey?: string;
  backend: ImageBackend;
  /** Renders this backend runs at once (across processes when slots are shared). */
  concurrency: number;
  /** Relative share of renders while several backends have room. */
  weight: number;
  /** A cheap call that resolves when the server answers; none: the backoff alone decides. */
  probe?: () => Promise<unknown>;
  /** For messages: "automatic1111 at http://gpu1:7860". */
  description?: string;
}

export interface BackendPoolOptions {
  /** Slot counting; default in-process. The pool closes it. */
  capacity?: BackendCapacity;
  /** Uniform in [0, 1) for the weighted order; seed it in tests. Default Math.random. */
  random?: () => number;
  /** First time out of rotation; doubles per consecutive failure. Default 5 s. */
  backoffBaseMs?: number;
  /** Longest time out of rotation before the next health call. Default 5 minutes. */
  backoffMaxMs?: number;
  /** Health calls to backends in rotation; 0 turns them off. Default 30 s. */
  healthIntervalMs?: number;
  /** With shared slots, how often a waiting render looks for one freed elsewhere. Default 200 ms. */
  pollMs?: number;
  logger?: Logger;
  /** Told whenever a backend leaves or rejoins rotation (tests and doctor wait on it). */
  onHealthChange?: (change: HealthChange) => void;
  /** Wall clock in ms (tests). */
  now?: () => number;
}

export interface HealthChange {
  member: string;
  state: "up" | "down";
  /** Down: why, and how long until the next health call. */
  reason?: string;
  retryInMs?: number;
}

export interface MemberStatus {
  name: string;
  description: string;
  state: "up" | "down";
  /** Consecutive failures since its last successful render. */
  failures: number;
  /** Down: why it left rotation, and when (epoch ms) it is checked again. */
  reason?: string;
  retryAt?: number;
  concurrency: number;
  weight: number;
}

export interface BackendPool extends ImageBackend {
  readonly name: "pool";
  /** Where each backend stands now (this process's view of health). */
  status(): MemberStatus[];
  /** Runs every backend's health call now and updates rotation; resolves with the new status. */
  checkHealth(): Promise<MemberStatus[]>;
}

/** Every backend is out of rotation: an operator problem (the message names each backend). */
export class AllBackendsDownError extends BotError {
  readonly members: MemberStatus[];

  constructor(members: MemberStatus[], now: number, options?: { cause?: unknown }) {
    const parts = members.map((member) => {
      const wait = Math.max(0, Math.ceil(((member.retryAt ?? now) - now) / 1000));
      return `${member.name} (${member.description}): ${member.reason ?? "down"}, checked again in ${wait} s`;
    });
    super(
      "GENERATION_FAILED",
      `No image backend is in rotation, so nothing can render: ${parts.join("; ")}. ` +
        "Start the servers or fix their URLs (image.backends / IMAGE_BACKENDS).",
      options,
    );
    this.members = members;
  }
}

/** The render failed through the backend's fault: unreachable, timed out, or HTTP 5xx. */
export function isBackendFault(error: unknown): boolean {
  if (error instanceof BackendBusyError) return false;
  if (error instanceof RemoteCallError) {
    if (error.status === undefined) return error.retryable;
    return error.status >= 500;
  }
  // Errors from an HTTP client library (Hugging Face's): transient network failures and 5xx.
  if (error instanceof BotError) return false;
  return isRetryableError(error) && !isRateLimited(error);
}

/** The server is there but has no room now: another backend may take the render. */
function isBusy(error: unknown): boolean {
  return error instanceof BackendBusyError || isRateLimited(error);
}

function isRateLimited(error: unknown): boolean {
  const status =
    error instanceof RemoteCallError ? error.status : (error as { status?: unknown })?.status;
  return status === 429;
}

const DEFAULTS = {
  backoffBaseMs: 5_000,
  backoffMaxMs: 300_000,
  healthIntervalMs: 30_000,
  pollMs: 200,
};

interface MemberState {
  member: PoolMember;
  up: boolean;
  failures: number;
  reason?: string;
  retryAt?: number;
  recheck?: NodeJS.Timeout;
  probing: boolean;
  /** A recheck was asked for while a health call ran: run another when it ends. */
  recheckAgain: boolean;
  /** Counts departures from rotation, so a health answer older than a failure is ignored. */
  epoch: number;
}

export function createBackendPool(
  members: readonly PoolMember[],
  options: BackendPoolOptions = {},
): BackendPool {
  validateMembers(members);
  const settings = {
    backoffBaseMs: options.backoffBaseMs ?? DEFAULTS.backoffBaseMs,
    backoffMaxMs: options.backoffMaxMs ?? DEFAULTS.backoffMaxMs,
    healthIntervalMs: options.healthIntervalMs ?? DEFAULTS.healthIntervalMs,
    pollMs: options.pollMs ?? DEFAULTS.pollMs,
  };
  const capacity = options.capacity ?? memoryCapacity();
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const logger = options.logger?.child({ component: "image-pool" });
  const lifetime = new AbortController();
  const states: MemberState[] = members.map((member) => ({
    member,
    up: true,
    failures: 0,
    probing: false,
    recheckAgain: false,
    epoch: 0,
  }));

  // Wakes renders waiting for a slot; `version` catches a wake-up between a look and the wait.
  let version = 0;
  const waiters = new Set<() => void>();
  const wake = () => {
    version++;
    for (const resolve of waiters) resolve();
    waiters.clear();
  };

  const status = (state: MemberState): MemberStatus => ({
    name: state.member.name,
    description: state.member.description ?? state.member.backend.name,
    state: state.up ? "up" : "down",
    failures: state.failures,
    ...(state.up ? {} : { reason: state.reason, retryAt: state.retryAt }),
    concurrency: state.member.concurrency,
    weight: state.member.weight,
  });

  /** Out of rotation after a failure; `byHealthCall` when the backoff's health call failed. */
  function takeOut(state: MemberState, error: unknown, byHealthCall = false): void {
    if (lifetime.signal.aborted) return;
    // Renders that were already running when it went down fail too: one failure, one backoff.
    if (!state.up && !byHealthCall) return;
    state.epoch++;
    state.failures++;
    const retryInMs = Math.min(
      settings.backoffMaxMs,
      settings.backoffBaseMs * 2 ** (state.failures - 1),
    );
    const wasUp = state.up;
    state.up = false;
    state.reason = error instanceof Error ? error.message : String(error);
    state.retryAt = now() + retryInMs;
    clearTimeout(state.recheck);
    state.recheck = setTimeout(() => void recheck(state), retryInMs);
    state.recheck.unref();
    logger?.warn(
      { backend: state.member.name, failures: state.failures, retryInMs, err: error },
      wasUp ? "image backend out of rotation" : "image backend still down",
    );
    options.onHealthChange?.({
      member: state.member.name,
      state: "down",
      reason: state.reason,
      retryInMs,
    });
    wake();
  }

  function bringBack(state: MemberState): void {
    if (state.up || lifetime.signal.aborted) return;
    state.up = true;
    state.reason = undefined;
    state.retryAt = undefined;
    logger?.info({ backend: state.member.name }, "image backend back in rotation");
    options.onHealthChange?.({ member: state.member.name, state: "up" });
    wake();
  }

  /** One health call; undefined when it answered, else the error. */
  async function probe(state: MemberState): Promise<unknown> {
    if (state.member.probe === undefined) return undefined;
    try {
      await state.member.probe();
      return undefined;
    } catch (error) {
      return error ?? new Error("health call failed");
    }
  }

  async function recheck(state: MemberState): Promise<void> {
    if (lifetime.signal.aborted) return;
    if (state.probing) {
      state.recheckAgain = true;
      return;
    }
    state.probing = true;
    const epoch = state.epoch;
    try {
      const failure = await probe(state);
      // A render that failed while the call ran is newer news than the call's answer.
      if (epoch === state.epoch) {
        if (failure === undefined) bringBack(state);
        else takeOut(state, failure, true);
      }
    } finally {
      state.probing = false;
      if (state.recheckAgain) {
        state.recheckAgain = false;
        void recheck(state);
      }
    }
  }

  const healthTimer =
    settings.healthIntervalMs > 0
      ? setInterval(() => {
          for (const state of states) if (state.up) void recheck(state);
        }, settings.healthIntervalMs)
      : undefined;
  healthTimer?.unref();

  /** Candidates in a weighted random order (weighted sampling without replacement). */
  function weightedOrder(candidates: MemberState[]): MemberState[] {
    const rest = [...candidates];
    const order: MemberState[] = [];
    while (rest.length > 0) {
      const total = rest.reduce((sum, state) => sum + state.member.weight, 0);
      let target = random() * total;
      let index = rest.length - 1;
      for (const [i, state] of rest.entries()) {
        target -= state.member.weight;
        if (target < 0) {
          index = i;
          break;
        }
      }
      order.push(...rest.splice(index, 1));
    }
    return order;
  }

  function throwIfAborted(signal: AbortSignal): void {
    if (!signal.aborted) return;
    // The queue aborts with its own BotError (DEADLINE): keep it; anything else is ABORTED.
    throw signal.reason instanceof BotError ? signal.reason : abortedError(signal);
  }

  function waitForChange(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let poll: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(poll);
        signal.removeEventListener("abort", onAbort);
        waiters.delete(done);
        resolve();
      };
      const onAbort = () => {
        clearTimeout(poll);
        waiters.delete(done);
        try {
          throwIfAborted(signal);
        } catch (error) {
          reject(error);
        }
      };
      // An abort before the listener is added would never be heard.
      if (signal.aborted) {
        onAbort();
        return;
      }
      waiters.add(done);
      signal.addEventListener("abort", onAbort, { once: true });
      // Slots freed by other processes are not announced here.
      if (capacity.shared) poll = setTimeout(done, settings.pollMs);
    });
  }

  /**
   * A backend in rotation, not yet tried by this render, with a slot taken for it. Waits while
   * every such backend is full; undefined when none is left to try.
   */
  async function acquire(
    tried: ReadonlySet<string>,
    signal: AbortSignal,
    lastError: unknown,
  ): Promise<{ state: MemberState; lease: CapacityLease } | undefined> {
    for (;;) {
      throwIfAborted(signal);
      const seen = version;
      const candidates = states.filter((state) => state.up && !tried.has(state.member.name));
      if (candidates.length === 0) {
        if (tried.size > 0) return undefined;
        throw new AllBackendsDownError(states.map(status), now(), { cause: lastError });
      }
      for (const state of weightedOrder(candidates)) {
        const lease = await capacity.tryAcquire(
          state.member.slotKey ?? state.member.name,
          state.member.concurrency,
        );
        if (lease === undefined) continue;
        // It may have left rotation, or the render been cancelled, while the slot was taken.
        if (!state.up || signal.aborted) {
          await lease.release();
          wake();
          continue;
        }
        return { state, lease };
      }
      if (version === seen) await waitForChange(signal);
    }
  }

  return {
    name: "pool",
    async render(request: ImageRequest): Promise<RenderedImage> {
      if (lifetime.signal.aborted) {
        throw new BotError("GENERATION_FAILED", "image backend pool: the pool is closed");
      }
      const signal = request.signal
        ? AbortSignal.any([lifetime.signal, request.signal])
        : lifetime.signal;
      const tried = new Set<string>();
      let lastError: unknown;
      for (;;) {
        const slot = await acquire(tried, signal, lastError);
        if (slot === undefined) throw lastError;
        const { state, lease } = slot;
        tried.add(state.member.name);
        try {
          const image = await state.member.backend.render({ ...request, signal });
          state.failures = 0;
          // The generation record says which server rendered it, not "pool".
          return { ...image, backend: image.backend ?? state.member.name };
        } catch (error) {
          if (signal.aborted) throwIfAborted(signal);
          const fault = isBackendFault(error);
          if (!fault && !isBusy(error)) throw error;
          if (fault) takeOut(state, error);
          lastError = error;
          logger?.warn(
            { backend: state.member.name, err: error },
            "image render failed on this backend; trying another",
          );
        } finally {
          await lease.release();
          wake();
        }
      }
    },
    status: () => states.map(status),
    async checkHealth() {
      await Promise.all(states.map((state) => recheck(state)));
      return states.map(status);
    },
    async close() {
      if (lifetime.signal.aborted) return;
      lifetime.abort(new BotError("ABORTED", "The image backend pool was closed"));
      clearInterval(healthTimer);
      for (const state of states) clearTimeout(state.recheck);
      wake();
      await Promise.allSettled(states.map((state) => state.member.backend.close()));
      await capacity.close();
    },
  };
}

function validateMembers(members: readonly PoolMember[]): void {
  if (members.length === 0) throw new ConfigError("an image pool needs a backend");
  const names = new Set<string>();
  for (const member of members) {
    if (names.has(member.name)) {
      throw new ConfigError(`two image backends are named "${member.name}"`);
    }
    names.add(member.name);
    if (!Number.isInteger(member.concurrency) || member.concurrency < 1) {
      throw new ConfigError(`image backend ${member.name}: concurrency must be an integer ≥ 1`);
    }
    if (!(member.weight > 0) || !Number.isFinite(member.weight)) {
      throw new ConfigError(`image backend ${member.name}: weight must be > 0`);
    }
  }
}
