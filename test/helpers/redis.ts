import { createClient } from "@keyv/redis";

/**
 * Deletes every key under `prefix` on the test Redis: each test writes under a prefix of its own
 * (values, index sets, queue keys alike) and leaves nothing behind.
 */
export async function deleteRedisKeys(url: string, prefix: string): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  try {
    const doomed: string[] = [];
    for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      doomed.push(...batch);
    }
    if (doomed.length > 0) await client.del(doomed);
  } finally {
    await client.close();
  }
}
