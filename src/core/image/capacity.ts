/**
 * How many renders a backend runs at once, counted where every process that renders can see it.
 *
 *   memory   one process (the default): a counter per backend.
 *   redis    several worker processes on one Redis (IMAGINE_QUEUE_URL): a sorted set per backend
 *            whose members are leases scored by their expiry, taken and renewed by small Lua
 *            scripts so that check-and-take is one atomic step. A lease is renewed while its
 *            render runs and expires ttlMs after its process stops renewing it, so a killed
 *            worker frees its slot instead of holding it for ever.
 *
 * Two Lua scripts on the Redis client the vote store already uses rather than a semaphore
 * library (redis-semaphore): ~30 lines, and the slots' keys follow the queue's prefix.
 */
import { randomUUID } from "node:crypto";
import { createClient } from "@keyv/redis";
import { ConfigError } from "../errors.js";
import type { Logger } from "../types.js";

/** One held slot; release() is idempotent. */
export interface CapacityLease {
  release(): Promise<void>;
}

export interface BackendCapacity {
  /**
   * Whether other processes take slots too: their releases are not announced here, so a caller
   * waiting for a slot must look again now and then instead of only on local releases.
   */
  readonly shared: boolean;
  /** A slot of `backend` when fewer than `limit` are held, else undefined (never waits). */
  tryAcquire(backend: string, limit: number): Promise<CapacityLease | undefined>;
  /** Slots of `backend` held now, by every process. */
  inUse(backend: string): Promise<number>;
  close(): Promise<void>;
}

/** The in-process counter: exact, no I/O. */
export function memoryCapacity(): BackendCapacity {
  const held = new Map<string, number>();
  return {
    shared: false,
    async tryAcquire(backend, limit) {
      const count = held.get(backend) ?? 0;
      if (count >= limit) return undefined;
      held.set(backend, count + 1);
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          held.set(backend, (held.get(backend) ?? 1) - 1);
        },
      };
    },
    async inUse(backend) {
      return held.get(backend) ?? 0;
    },
    async close() {},
  };
}

// Redis' own clock (TIME) decides expiry, so processes with skewed clocks agree.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** The key lives as long as its longest lease could, so an idle backend leaves nothing behind. */
const KEEP_KEY = `if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end`;

/** KEYS[1] the backend's set; ARGV ttlMs, lease id, limit → 1 when taken. */
const ACQUIRE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
${KEEP_KEY}
return 1`;

/** ARGV ttlMs, lease id → 1 when the lease was still held and now runs ttlMs longer. */
const RENEW = `${NOW}
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not expiry or tonumber(expiry) <= now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
${KEEP_KEY}
return 1`;

/** → the number of unexpired leases. */
const COUNT = `${NOW}
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')`;

export interface RedisCapacityOptions {
  /** redis:// or rediss:// URL (IMAGINE_QUEUE_URL). */
  url: string;
  /** Key prefix; every key this store writes starts with it. Default "imagine:backend-slots:". */
  prefix?: string;
  /** A lease not renewed for this long is free again (a killed process). Default 30 s. */
  leaseTtlMs?: number;
  logger?: Logger;
}

export const DEFAULT_LEASE_TTL_MS = 30_000;

/**
 * Slots counted in Redis. Connects on first use; a render then fails with a ConfigError naming
 * IMAGINE_QUEUE_URL when Redis cannot be reached.
 */
export function redisCapacity(options: RedisCapacityOptions): BackendCapacity {
  const prefix = options.prefix ?? "imagine:backend-slots:";
  const ttlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  if (!Number.isInteger(ttlMs) || ttlMs < 100) {
    throw new ConfigError("backend slot leaseTtlMs must be an integer of at least 100 ms");
  }
  const logger = options.logger?.child({ component: "image-capacity" });
  let connected = false;
  const client = createClient({
    url: options.url,
    socket: {
      connectTimeout: 10_000,
      // Reconnect after a dropped connection (backing off up to 2 s); fail at once at first.
      reconnectStrategy: (retries: number, cause: Error) =>
        connected ? Math.min(100 * 2 ** retries, 2_000) : cause,
    },
  });
  client.on("error", (error: unknown) => {
    logger?.warn({ err: error }, "backend slots: redis connection error");
  });
  let connecting: Promise<void> | undefined;
  const ready = () => {
    connecting ??= client.connect().then(
      () => {
        connected = true;
      },
      (error: unknown) => {
        connecting = undefined;
        throw new ConfigError(
          `Cannot reach Redis for the image backends' shared slots (IMAGINE_QUEUE_URL): ${(error as Error).message}`,
          { cause: error },
        );
      },
    );
    return connecting;
  };
  const key = (backend: string) => `${prefix}${backend}`;
  const heartbeats = new Set<NodeJS.Timeout>();

  return {
    shared: true,
    async tryAcquire(backend, limit) {
      await ready();
      const id = randomUUID();
      const taken = await client.eval(ACQUIRE, {
        keys: [key(backend)],
        arguments: [String(ttlMs), id, String(limit)],
      });
      if (taken !== 1) return undefined;
      // Renewed at a third of the TTL: two renewals may fail (a slow Redis) before it lapses.
      const heartbeat = setInterval(
        () => {
          client
            .eval(RENEW, { keys: [key(backend)], arguments: [String(ttlMs), id] })
            .then((renewed) => {
              if (renewed !== 1) {
                logger?.warn({ backend }, "backend slot lease lapsed while its render ran");
              }
            })
            .catch((error: unknown) => logger?.warn({ err: error }, "backend slot renewal failed"));
        },
        Math.floor(ttlMs / 3),
      );
      heartbeat.unref();
      heartbeats.add(heartbeat);
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          clearInterval(heartbeat);
          heartbeats.delete(heartbeat);
          // A lost release only holds the slot until the lease expires.
          await client.zRem(key(backend), id).catch((error: unknown) => {
            logger?.warn({ err: error, backend }, "backend slot release failed");
          });
        },
      };
    },
    async inUse(backend) {
      await ready();
      return Number(await client.eval(COUNT, { keys: [key(backend)] }));
    },
    async close() {
      for (const heartbeat of heartbeats) clearInterval(heartbeat);
      heartbeats.clear();
      await connecting?.catch(() => undefined);
      if (client.isOpen) await client.close();
    },
  };
}
