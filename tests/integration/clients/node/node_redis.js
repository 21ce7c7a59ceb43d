// node-redis (npm "redis") through its common API; see ../README.md.
"use strict";
const { createClient, RESP_TYPES } = require("redis");
const { CFG, T, expect, bounded, sleep, run } = require("./common");
const P = CFG.prefix;

async function client(cleanup, opts = {}) {
  const pw = opts.password !== undefined ? opts.password : CFG.password;
  const r = createClient({
    socket: { host: CFG.host, port: CFG.port, connectTimeout: T, reconnectStrategy: false },
    password: pw || undefined, database: opts.db || 0,
  });
  r.on("error", () => {}); // reported by the command that fails
  cleanup.push(r);
  await bounded(r.connect(), T, "connect");
  return r;
}

const features = {
  async basic(c) {
    const r = await client(c);
    expect("PING", await r.ping(), "PONG");
    expect("SET", await r.set(P + "basic", "v1"), "OK");
    expect("GET", await r.get(P + "basic"), "v1");
    expect("INCR", await r.incr(P + "ctr"), 1);
    expect("DEL", await r.del([P + "basic", P + "ctr"]), 2);
    expect("GET missing", await r.get(P + "basic"), null);
  },
  async auth(c) {
    const r = await client(c, { password: CFG.auth_password });
    expect("PING", await r.ping(), "PONG");
    let accepted = true;
    try { await client(c, { password: "wrong-password" }); } catch (e) { accepted = false; }
    if (accepted) throw new Error("a wrong password was accepted");
  },
  async db(c) {
    const r = await client(c, { db: CFG.db });
    expect("SET", await r.set(P + "db", "in-db"), "OK");
    expect("GET", await r.get(P + "db"), "in-db");
    const r0 = await client(c);
    expect("GET in db 0", await r0.get(P + "db"), null);
    await r.del(P + "db");
  },
  async pipeline(c) {
    const r = await client(c);
    const m = r.multi();
    for (let i = 0; i < 100; i++) m.set(`${P}pipe:${i}`, `v${i}`);
    for (let i = 0; i < 100; i++) m.get(`${P}pipe:${i}`);
    const got = await m.execAsPipeline();
    const want = Array(100).fill("OK");
    for (let i = 0; i < 100; i++) want.push(`v${i}`);
    expect("pipeline", got, want);
  },
  async multi_watch(c) {
    const r = await client(c), other = await client(c);
    const key = P + "watched";
    await r.set(key, "1");
    expect("WATCH", await r.watch(key), "OK");
    expect("GET under WATCH", await r.get(key), "1");
    expect("EXEC", await r.multi().set(key, "2").incr(key).exec(), ["OK", 3]);
    expect("after EXEC", await r.get(key), "3");
    await r.watch(key);
    await other.set(key, "changed");
    let aborted = false;
    try {
      aborted = (await r.multi().set(key, "lost").exec()) === null;
    } catch (e) {
      if (e.name !== "WatchError" && !/watch/i.test(e.message)) throw e;
      aborted = true;
    }
    if (!aborted) throw new Error("EXEC ran although the WATCHed key changed");
    expect("after aborted EXEC", await r.get(key), "changed");
  },
  async pubsub(c) {
    const sub = await client(c), pub = await client(c);
    let got = null;
    await sub.subscribe(P + "chan", (msg) => { got = msg; });
    const deadline = Date.now() + T;
    while (got === null && Date.now() < deadline) {
      await pub.publish(P + "chan", "hello");
      await sleep(50);
    }
    expect("message", got, "hello");
  },
  async blpop(c) {
    const r = await client(c), other = await client(c);
    const key = P + "list";
    const waiter = r.blPop(key, Math.floor(T / 1000));
    await sleep(200);
    await other.rPush(key, "wake");
    expect("BLPOP", await waiter, { key, element: "wake" });
  },
  async big(c) {
    const r = await client(c);
    const v = Buffer.alloc(1 << 20);
    for (let i = 0; i < v.length; i++) v[i] = i & 255;
    expect("SET 1 MiB", await r.set(P + "big", v), "OK");
    const rb = r.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    expect("GET 1 MiB", (await rb.get(P + "big")).equals(v), true);
    await r.del(P + "big");
  },
  async concurrent(c) {
    const n = CFG.clients;
    const errors = [];
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      try {
        const r = await client(c);
        for (let k = 0; k < 10; k++) {
          const key = `${P}conc:${i}:${k}`;
          expect("SET", await r.set(key, `${i}-${k}`), "OK");
          expect("GET", await r.get(key), `${i}-${k}`);
        }
      } catch (e) { errors.push(`client ${i}: ${e.message}`); }
    }));
    if (errors.length) throw new Error(`${errors.length} of ${n} clients failed, first: ${errors[0]}`);
  },
};

run("node-redis", require("redis/package.json").version, features,
    (r) => (r.destroy ? r.destroy() : r.disconnect()));
