/**
 * Kv.commit with several guards, run against every backend: all of them are checked and
 * written in one atomic step, or nothing is written (the vote store's castAnswer relies on it).
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Kv } from "../../src/core/votes/kv.js";

export function kvCommitContract(name: string, open: () => Promise<Kv>): void {
  describe(`Kv multi-guard commit: ${name}`, () => {
    const opened: Kv[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((kv) => kv.close()));
    });

    it("writes every guard and write when all guards hold what was read, nothing otherwise", async () => {
      const kv = await open();
      opened.push(kv);
      const guards = ["trail/g/r/quality", "trail/g/r/faithfulness"];
      const values = ["vote/g/r/quality", "vote/g/r/faithfulness"];
      const collection = "vote/g/";

      // Both absent: taken by one commit.
      expect(
        await kv.commit(
          guards.map((key, i) => ({ key, version: undefined, value: { n: i } })),
          values.map((key, i) => ({ key, value: { score: i + 1 }, collection, guard: guards[i] })),
        ),
      ).toBe(true);
      const read = await kv.getVersionedMany<{ n: number }>(guards, values);
      expect(read.guards.map((g) => g.value)).toEqual([{ n: 0 }, { n: 1 }]);
      expect(read.values).toEqual([{ score: 1 }, { score: 2 }]);

      // One guard changed by another writer since the read: nothing is written, the other
      // guard included.
      const [quality, faithfulness] = read.guards;
      expect(
        await kv.commit(
          [{ key: guards[1] as string, version: faithfulness?.version, value: { n: 11 } }],
          [],
        ),
      ).toBe(true);
      expect(
        await kv.commit(
          [
            { key: guards[0] as string, version: quality?.version, value: { n: 20 } },
            { key: guards[1] as string, version: faithfulness?.version, value: { n: 21 } },
          ],
          [{ key: values[0] as string, value: { score: 4 }, collection, guard: guards[0] }],
        ),
      ).toBe(false);
      const after = await kv.getVersionedMany<{ n: number }>(guards, values);
      expect(after.guards.map((g) => g.value)).toEqual([{ n: 0 }, { n: 11 }]);
      expect(after.values).toEqual([{ score: 1 }, { score: 2 }]);
      // A guard that must be absent but exists fails the commit too.
      expect(
        await kv.commit(
          [
            { key: guards[0] as string, version: after.guards[0]?.version, value: { n: 30 } },
            { key: guards[1] as string, version: undefined, value: { n: 31 } },
          ],
          [],
        ),
      ).toBe(false);

      // With both current: sets and deletes (each with its guard) apply together.
      expect(
        await kv.commit(
          after.guards.map((g, i) => ({
            key: guards[i] as string,
            version: g.version,
            value: { n: 40 + i },
          })),
          [
            { key: values[0] as string, collection, guard: guards[0] },
            { key: values[1] as string, value: { score: 3 }, collection, guard: guards[1] },
          ],
        ),
      ).toBe(true);
      const final = await kv.getVersionedMany<{ n: number }>(guards, values);
      expect(final.guards.map((g) => g.value)).toEqual([{ n: 40 }, { n: 41 }]);
      expect(final.values).toEqual([undefined, { score: 3 }]);
      const listed: string[] = [];
      for await (const [key] of kv.list(collection)) listed.push(key);
      expect(listed).toEqual([values[1]]);
    });

    it("applies a commit that requires keys to be absent only while they are", async () => {
      const kv = await open();
      opened.push(kv);
      await kv.set("vote/a/r/quality", { score: 2 }, "vote/a/");
      const guard = { key: "trail/a/r/quality", version: undefined, value: { n: 1 } };
      const write = { key: "vote/a/r/quality", value: { score: 4 }, collection: "vote/a/" };
      expect(await kv.commit([guard], [write], ["vote/a/r/quality"])).toBe(false);
      expect(await kv.get("vote/a/r/quality")).toEqual({ score: 2 });
      expect((await kv.getVersioned("trail/a/r/quality")).version).toBeUndefined();
      await kv.delete("vote/a/r/quality", "vote/a/");
      expect(await kv.commit([guard], [write], ["vote/a/r/quality"])).toBe(true);
      expect(await kv.get("vote/a/r/quality")).toEqual({ score: 4 });
      expect((await kv.getVersioned("trail/a/r/quality")).value).toEqual({ n: 1 });
    });

    it("lets exactly one of several commits racing on the same two guards win", async () => {
      const kv = await open();
      opened.push(kv);
      const guards = ["trail/h/r/quality", "trail/h/r/faithfulness"];
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          kv.commit(
            // Half of them name the guards in the other order.
            (i % 2 ? [...guards].reverse() : guards).map((key) => ({
              key,
              version: undefined,
              value: { winner: i },
            })),
            [{ key: `event/h-${i}`, value: i, collection: "event/" }],
          ),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      const read = await kv.getVersionedMany<{ winner: number }>(guards, []);
      expect(read.guards.map((g) => g.value)).toEqual([{ winner }, { winner }]);
      const events: string[] = [];
      for await (const [key] of kv.list("event/")) events.push(key);
      expect(events).toEqual([`event/h-${winner}`]);
    });
  });
}
