// resilienced through the two Node.js clients, ioredis 5 and node-redis 5:
// their connect handshakes (ioredis's INFO ready check, node-redis's
// CLIENT SETINFO), pipelines, MULTI/EXEC, WATCH, scans, errors, and
// CL.THROTTLE through each one's raw-command call.
//
//   node node.mjs PORT      (with ioredis and redis in node_modules)
import assert from "node:assert/strict";
import Redis from "ioredis";
import { createClient } from "redis";

const port = Number(process.argv[2]);

async function ioredis() {
  const r = new Redis({ port, lazyConnect: true, enableReadyCheck: true, maxRetriesPerRequest: 1 });
  await r.connect();
  await r.flushall();
  assert.equal(await r.set("a", "1", "EX", 100), "OK");
  assert.equal(await r.get("a"), "1");
  assert.ok((await r.ttl("a")) > 0);
  assert.equal(await r.incrby("n", 7), 7);
  assert.deepEqual(await r.mget("a", "missing", "n"), ["1", null, "7"]);
  const buf = Buffer.from([0, 255, 13, 10, 36]);
  await r.set("bin", buf);
  assert.deepEqual(await r.getBuffer("bin"), buf);

  const p = r.pipeline();
  for (let i = 0; i < 200; i++) p.set(`k${i}`, i);
  p.dbsize();
  const res = await p.exec();
  assert.equal(res.length, 201);
  assert.ok(res.every(([err]) => err === null));
  assert.equal(res[200][1], 203);

  const tx = await r.multi().set("{t}x", "1").incr("{t}x").get("{t}x").exec();
  assert.deepEqual(tx, [[null, "OK"], [null, 2], [null, "2"]]);
  const bad = await r.multi().set("s", "str").incr("s").exec();
  assert.equal(bad[0][1], "OK");
  assert.match(String(bad[1][0]), /not an integer/);

  const other = new Redis({ port });
  await r.watch("w");
  await other.set("w", "theirs");
  assert.equal(await r.multi().set("w", "mine").exec(), null, "EXEC after a change is null");
  assert.equal(await r.get("w"), "theirs");
  other.disconnect();

  const seen = new Set();
  await new Promise((resolve, reject) => {
    r.scanStream({ match: "k1*", count: 9 })
      .on("data", (keys) => keys.forEach((k) => seen.add(k)))
      .on("end", resolve)
      .on("error", reject);
  });
  assert.equal(seen.size, [...Array(200).keys()].filter((i) => String(i).startsWith("1")).length);

  const [allowed, limit, remaining] = await r.call("CL.THROTTLE", "io:user", 3, 10, 60);
  assert.deepEqual([allowed, limit, remaining], [0, 4, 3]);
  await assert.rejects(r.call("NOPE"), /unknown command/);
  r.disconnect();
}

async function nodeRedis(RESP) {
  const c = createClient({ socket: { port }, RESP });
  c.on("error", (e) => { throw e; });
  await c.connect();
  await c.flushAll();
  assert.equal(await c.set("a", "1", { PX: 100000 }), "OK");
  assert.equal(await c.get("a"), "1");
  assert.equal(await c.incr("n"), 1);
  assert.deepEqual(await c.mGet(["a", "nope", "n"]), ["1", null, "1"]);
  assert.equal(await c.exists(["a", "n", "nope"]), 2);

  const tx = await c.multi().set("{t}x", "5").incrBy("{t}x", 5).get("{t}x").exec();
  assert.deepEqual(tx, ["OK", 10, "10"]);
  const piped = await Promise.all([...Array(100).keys()].map((i) => c.set(`p${i}`, String(i))));
  assert.ok(piped.every((v) => v === "OK"));
  assert.equal(await c.dbSize(), 103);

  const keys = [];
  for await (const batch of c.scanIterator({ MATCH: "p1*", COUNT: 5 })) keys.push(...[batch].flat());
  assert.equal(new Set(keys).size, 11);

  const r = await c.sendCommand(["CL.THROTTLE", "nr:user", "1", "10", "60"]);
  assert.deepEqual(r.slice(0, 3), [0, 2, 1]);
  await assert.rejects(c.sendCommand(["NOPE"]), /unknown command/);
  assert.equal(await c.ping(), "PONG");
  await c.quit();
}

await ioredis();
console.log("ok  ioredis");
await nodeRedis(2);
console.log("ok  node-redis RESP2");
await nodeRedis(3);
console.log("ok  node-redis RESP3");
console.log("node clients: all passed");
