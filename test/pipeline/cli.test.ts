import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseA1111Parameters, readParametersChunk } from "../../src/core/image/png.js";
import { openVoteStore } from "../../src/core/votes/index.js";
import { runCli } from "../helpers/cli.js";
import { smallPng } from "./fakes.js";

const _ROOT = resolve(import.meta.dirname, "..", "..");

let root: string;
let server: Server;
let url: string;
const bodies: Record<string, unknown>[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "imagine-cli-"));
  const png = (await smallPng()).toString("base64");
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/sdapi/v1/txt2img") {
        res.writeHead(404).end();
        return;
      }
      const parsed = JSON.parse(body) as Record<string, unknown>;
      bodies.push(parsed);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          images: [png],
          parameters: {},
          info: JSON.stringify({ seed: parsed.seed, sd_model_name: "fake-sd2" }),
        }),
      );
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((done) => server.close(done));
  rmSync(root, { recursive: true, force: true });
});

describe("imagine-bot imagine", () => {
  it("exits 2 naming what to set when no image backend is configured", async () => {
    const { code, stderr, stdout } = await runCli(["imagine", "a lighthouse"], {
      IMAGINE_DATA_DIR: join(root, "none"),
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/No image backend is configured/);
    expect(stderr).toMatch(/IMAGE_BACKEND/);
    expect(stdout).toBe("");
  });

  it("renders against an AUTOMATIC1111 server, copies the PNGs to --out and prints JSON", async () => {
    const dataDir = join(root, "data");
    const out = join(root, "out");
    const env = { IMAGE_BACKEND: "automatic1111", A1111_URL: url, IMAGINE_DATA_DIR: dataDir };
    const args = ["imagine", "<@123> **a lighthouse**", "-n", "2", "--seed", "5"];
    const { code, stdout, stderr } = await runCli([...args, "--out", out, "--json"], env);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const result = JSON.parse(stdout);
    expect(Object.keys(result).sort()).toEqual(["images", "subject"]);
    expect(result.subject).toBe("a lighthouse");
    expect(result.images).toHaveLength(2);
    expect(bodies.map((b) => b.seed)).toEqual([5, 6]);
    for (const [i, image] of result.images.entries()) {
      expect(Object.keys(image).sort()).toEqual(["path", "prompt", "seed", "timings"]);
      expect(image.prompt.startsWith("a lighthouse")).toBe(true);
      expect(image.seed).toBe(5 + i);
      expect(image.path.startsWith(out)).toBe(true);
      const text = readParametersChunk(readFileSync(image.path));
      expect(parseA1111Parameters(text as string)).toMatchObject({
        prompt: image.prompt,
        seed: 5 + i,
        model: "fake-sd2",
      });
      expect(text).not.toMatch(/ft-tags/);
    }
    expect(readdirSync(out)).toHaveLength(2);
    // The record, with the arm, stays server-side: in the vote store in the data directory.
    const store = await openVoteStore("sqlite://votes.sqlite", { dataDir });
    const records = [];
    for await (const generation of store.generations()) records.push(generation);
    await store.close();
    expect(records.map((generation) => generation.arm)).toEqual(["ft-tags", "ft-tags"]);

    // Text output without --out: paths in the data directory, prompt, seed and timings.
    const text = await runCli(["imagine", "a red fox", "--seed", "9"], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^# a red fox, seed 9\na red fox/);
    expect(text.stdout).toMatch(/seed 9 {2}\S+\/images\/\d{4}-\d{2}-\d{2}\/[0-9a-f-]+\.png\n/);
    expect(text.stdout).toMatch(/prompt \d+\.\d\d s, render \d+\.\d\d s, total \d+\.\d\d s/);
    expect(text.stdout).not.toMatch(/ft-tags/);
  });

  it("exits 2 for an explicit subject without rendering", async () => {
    const before = bodies.length;
    const { code, stderr } = await runCli(["imagine", "hentai fox"], {
      IMAGE_BACKEND: "automatic1111",
      A1111_URL: url,
      IMAGINE_DATA_DIR: join(root, "data"),
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/explicit-content filter/);
    expect(stderr).not.toMatch(/hentai/);
    expect(bodies.length).toBe(before);
  });
});
