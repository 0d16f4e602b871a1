/**
 * `imagine-bot doctor` with several image backends: one line per backend, each from its own
 * health call, so the one that is down is named.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDoctor } from "../../src/adapters/cli/doctor.js";
import { FakeAutomatic1111 } from "../fakes/automatic1111.js";
import { closedLoopbackPort } from "../fakes/loopback.js";

const MODEL_DIR = resolve(import.meta.dirname, "..", "..", "models", "tiny-caption-gpt2");

let a1111: FakeAutomatic1111;
let dataDir: string;
beforeAll(async () => {
  a1111 = await new FakeAutomatic1111().start();
  dataDir = await mkdtemp(join(tmpdir(), "imagine-pool-doctor-"));
});
afterAll(async () => {
  await a1111.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe("doctor with several image backends", () => {
  it("checks each backend and names the one that does not answer", async () => {
    const port = await closedLoopbackPort();
    const checks = await runDoctor({
      IMAGINE_DATA_DIR: dataDir,
      IMAGINE_MODEL_DIR: MODEL_DIR,
      IMAGINE_VOTE_STORE: "memory://",
      IMAGE_BACKENDS: `gpu1:a1111=${a1111.url}*2^3,gpu2:a1111=http://127.0.0.1:${port}`,
    });
    const byName = new Map(checks.map((check) => [check.name, check]));
    expect(byName.has("image backend")).toBe(false);
    expect(byName.get("image backend gpu1")).toMatchObject({ state: "ok" });
    expect(byName.get("image backend gpu1")?.detail).toMatch(
      /^automatic1111: .* 1 checkpoint\(s\) \(concurrency 2, weight 3\)$/,
    );
    expect(byName.get("image backend gpu2")).toMatchObject({ state: "fail" });
    expect(byName.get("image backend gpu2")?.detail).toContain(`127.0.0.1:${port}`);
    expect(a1111.requests.filter((r) => r.path === "/sdapi/v1/sd-models")).toHaveLength(1);
  });
});
