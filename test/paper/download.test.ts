/**
 * scripts/paper-download.sh, the LAION download of scripts/paper.sh, against a server on
 * 127.0.0.1 that answers Range requests and can cut a response or lie about the size: a cut
 * transfer is resumed (within the run and by a rerun), the file appears only when its size and
 * (with LAION_SHA256) its SHA-256 match, and a bad file is removed with a message.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { closeServer, listenOnLoopback } from "../fakes/loopback.js";
import { testProcessEnv } from "../helpers/cli.js";

const SCRIPT = resolve(import.meta.dirname, "..", "..", "scripts", "paper-download.sh");
const BLOB = randomBytes(300_000);
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

let server: Server;
let url: string;
let dir: string;
/** Responses still to cut after this many body bytes, one per request. */
let cuts: number[];
/** The size the server states; the true one unless a test lies. */
let statedSize: number;
let ranges: (string | undefined)[];

beforeEach(async () => {
  cuts = [];
  statedSize = BLOB.length;
  ranges = [];
  server = createServer((req, res) => {
    if (req.method === "HEAD") {
      res.writeHead(200, { "content-length": String(statedSize), "accept-ranges": "bytes" });
      res.end();
      return;
    }
    ranges.push(req.headers.range);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const body = BLOB.subarray(start);
    res.writeHead(range ? 206 : 200, {
      "content-length": String(body.length),
      ...(range ? { "content-range": `bytes ${start}-${BLOB.length - 1}/${BLOB.length}` } : {}),
    });
    const cut = cuts.shift();
    if (cut === undefined) {
      res.end(body);
      return;
    }
    res.write(body.subarray(0, cut), () => res.socket?.destroy());
  });
  url = `${await listenOnLoopback(server)}/laion.parquet`;
  dir = await mkdtemp(join(tmpdir(), "imagine-paper-download-"));
});

afterEach(async () => {
  await closeServer(server);
  await rm(dir, { recursive: true, force: true });
});

async function download(env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      "bash",
      [SCRIPT, url, join(dir, "laion.parquet")],
      { env: { ...testProcessEnv(), PAPER_RETRY_DELAY: "0", ...env }, timeout: 30_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("scripts/paper-download.sh", () => {
  it("resumes a cut transfer within the run and checks size and SHA-256", async () => {
    cuts.push(100_000);
    const result = await download({ LAION_SHA256: sha256(BLOB) });
    expect(result.code).toBe(0);
    expect(sha256(await readFile(join(dir, "laion.parquet")))).toBe(sha256(BLOB));
    expect(existsSync(join(dir, "laion.parquet.part"))).toBe(false);
    expect(ranges).toHaveLength(2);
  });

  it("a rerun continues a .part left by a stopped run with a Range request", async () => {
    await writeFile(join(dir, "laion.parquet.part"), BLOB.subarray(0, 120_000));
    const result = await download();
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("resuming");
    expect(ranges).toEqual(["bytes=120000-"]);
    expect(sha256(await readFile(join(dir, "laion.parquet")))).toBe(sha256(BLOB));
  });

  it("removes a file whose SHA-256 or size does not match, and says so", async () => {
    const wrongHash = await download({ LAION_SHA256: "0".repeat(64) });
    expect(wrongHash.code).not.toBe(0);
    expect(wrongHash.stderr).toContain("does not match LAION_SHA256; removed");
    expect(existsSync(join(dir, "laion.parquet"))).toBe(false);
    expect(existsSync(join(dir, "laion.parquet.part"))).toBe(false);

    statedSize = BLOB.length + 1;
    const wrongSize = await download();
    expect(wrongSize.code).not.toBe(0);
    expect(wrongSize.stderr).toMatch(/got 300000 bytes, the server states 300001; removed/);
    expect(existsSync(join(dir, "laion.parquet"))).toBe(false);
  });
});
