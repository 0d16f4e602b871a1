/**
 * What routing through the image backend pool (src/core/image/pool.ts) costs per render, against
 * calling one backend directly:
 *
 * 1. In-memory backends that answer at once: the pool's own work (weighted order, slot taken and
 *    released, health bookkeeping), one render at a time and 8 at a time over 3 backends.
 * 2. AUTOMATIC1111 backends over HTTP on 127.0.0.1 (a minimal server answering a fixed 64×64 PNG):
 *    the same, with the real client (request, JSON, base64, PNG decode) around it.
 * 3. With slots shared through Redis (--redis URL, or IMAGINE_TEST_REDIS_URL): the two extra
 *    round trips per render (take the slot with a Lua script, release it).
 *
 *   npx tsx bench/backends.ts [--renders 20000] [--http-renders 1000] [--redis redis://127.0.0.1:6390]
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { createAutomatic1111Backend } from "../src/core/image/automatic1111.js";
import { type BackendCapacity, memoryCapacity, redisCapacity } from "../src/core/image/capacity.js";
import { createBackendPool, type PoolMember } from "../src/core/image/pool.js";
import { seededRandom } from "../src/core/random.js";
import type { ImageBackend, ImageRequest, RenderedImage } from "../src/core/types.js";

const { values: flags } = parseArgs({
  options: {
    renders: { type: "string", default: "20000" },
    "http-renders": { type: "string", default: "1000" },
    redis: { type: "string", default: process.env.IMAGINE_TEST_REDIS_URL ?? "" },
  },
});
const RENDERS = Number(flags.renders);
const HTTP_RENDERS = Number(flags["http-renders"]);

const REQUEST: ImageRequest = {
  prompt: "a lighthouse at dusk, oil painting",
  width: 64,
  height: 64,
  steps: 20,
  guidance: 7.5,
  seed: 1,
};

function instantBackend(name: string): ImageBackend {
  const png = Buffer.from("not decoded here");
  return {
    name,
    async render(request): Promise<RenderedImage> {
      return { png, width: request.width, height: request.height, model: name, seed: request.seed };
    },
    async close() {},
  };
}

function pool(backends: ImageBackend[], capacity: BackendCapacity, concurrency: number) {
  const members: PoolMember[] = backends.map((backend, i) => ({
    name: `b${i + 1}`,
    backend,
    concurrency,
    weight: i + 1,
  }));
  return createBackendPool(members, {
    capacity,
    random: seededRandom(1).next,
    healthIntervalMs: 0,
  });
}

function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] as number;
}

/** Per-render times in µs, `parallel` renders kept in flight; the first tenth is warm-up. */
async function time(backend: ImageBackend, renders: number, parallel: number): Promise<number[]> {
  const warmUp = Math.ceil(renders / 10);
  const times: number[] = [];
  let next = 0;
  const lane = async () => {
    while (next < renders + warmUp) {
      const index = next++;
      const started = performance.now();
      await backend.render({ ...REQUEST, seed: index });
      if (index >= warmUp) times.push((performance.now() - started) * 1000);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return times.sort((a, b) => a - b);
}

function summary(times: number[]): { mean: number; p50: number; p95: number } {
  const mean = times.reduce((sum, t) => sum + t, 0) / times.length;
  return { mean, p50: percentile(times, 50), p95: percentile(times, 95) };
}

async function compare(
  label: string,
  direct: ImageBackend,
  routed: ImageBackend,
  renders: number,
  parallel: number,
): Promise<void> {
  // Alternated twice so that JIT warm-up and machine noise hit both sides alike.
  const directTimes: number[] = [];
  const routedTimes: number[] = [];
  for (let round = 0; round < 2; round++) {
    directTimes.push(...(await time(direct, renders / 2, parallel)));
    routedTimes.push(...(await time(routed, renders / 2, parallel)));
  }
  const d = summary(directTimes.sort((a, b) => a - b));
  const r = summary(routedTimes.sort((a, b) => a - b));
  const us = (n: number) => n.toFixed(1).padStart(8);
  console.log(
    `${label.padEnd(44)} direct mean ${us(d.mean)} p50 ${us(d.p50)} p95 ${us(d.p95)} µs | ` +
      `pool mean ${us(r.mean)} p50 ${us(r.p50)} p95 ${us(r.p95)} µs | ` +
      `overhead mean ${us(r.mean - d.mean)} p50 ${us(r.p50 - d.p50)} µs`,
  );
}

/** A loopback server answering txt2img with one fixed PNG, as fast as an HTTP answer gets. */
async function fixedA1111(): Promise<{ url: string; close(): Promise<void> }> {
  const png = await sharp({
    create: { width: 64, height: 64, channels: 3, background: { r: 40, g: 90, b: 160 } },
  })
    .png()
    .toBuffer();
  const body = JSON.stringify({
    images: [png.toString("base64")],
    info: JSON.stringify({ seed: 1, sd_model_name: "fixed" }),
  });
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    });
  });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

console.log(`node ${process.version}; ${RENDERS} in-memory renders, ${HTTP_RENDERS} over HTTP`);

{
  const direct = instantBackend("direct");
  const routed = pool(
    [1, 2, 3].map((i) => instantBackend(`m${i}`)),
    memoryCapacity(),
    64,
  );
  await compare("in-memory, 1 at a time, 3 backends", direct, routed, RENDERS, 1);
  await compare("in-memory, 8 at a time, 3 backends", direct, routed, RENDERS, 8);
  await routed.close();
}

const servers = await Promise.all([fixedA1111(), fixedA1111()]);
const a1111 = (url: string) =>
  createAutomatic1111Backend({ url, sampler: "Euler a", timeoutMs: 10_000, retries: 0 });
{
  const direct = a1111(servers[0].url);
  const routed = pool(
    servers.map((server) => a1111(server.url)),
    memoryCapacity(),
    4,
  );
  await compare("A1111 over HTTP, 1 at a time, 2 backends", direct, routed, HTTP_RENDERS, 1);
  await compare("A1111 over HTTP, 4 at a time, 2 backends", direct, routed, HTTP_RENDERS, 4);
  await direct.close();
  await routed.close();
}

if (flags.redis) {
  const prefix = `bench-${process.pid}:`;
  const direct = instantBackend("direct");
  const capacity = redisCapacity({ url: flags.redis, prefix });
  const routed = pool(
    [1, 2, 3].map((i) => instantBackend(`m${i}`)),
    capacity,
    64,
  );
  const renders = Math.min(RENDERS, 4000);
  await compare("in-memory, slots on Redis, 1 at a time", direct, routed, renders, 1);
  await compare("in-memory, slots on Redis, 8 at a time", direct, routed, renders, 8);
  await routed.close();
} else {
  console.log("slots on Redis: skipped (pass --redis URL or set IMAGINE_TEST_REDIS_URL)");
}
await Promise.all(servers.map((server) => server.close()));
