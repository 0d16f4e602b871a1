/**
 * What the `models pull` tests share: retries that do not wait, the error a pull rejects with,
 * and a fake Hub plus an empty models directory for each test.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { FakeHub } from "../fakes/hub.js";

export const FAST_RETRY = { retries: 3, baseDelayMs: 1, maxDelayMs: 5 };

/** The error a promise rejects with. */
export async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the pull to fail");
}

/** A fresh fake Hub and models directory around every test of the calling file. */
export function useFakeHub(dirPrefix: string): {
  readonly hub: FakeHub;
  readonly modelsDir: string;
} {
  let hub: FakeHub | undefined;
  let modelsDir: string | undefined;
  beforeEach(async () => {
    hub = await new FakeHub().start();
    modelsDir = await mkdtemp(join(tmpdir(), dirPrefix));
  });
  afterEach(async () => {
    await hub?.stop();
    if (modelsDir !== undefined) await rm(modelsDir, { recursive: true, force: true });
  });
  return {
    get hub() {
      if (hub === undefined) throw new Error("the fake Hub starts before each test");
      return hub;
    },
    get modelsDir() {
      if (modelsDir === undefined) throw new Error("the models directory is made before each test");
      return modelsDir;
    },
  };
}
