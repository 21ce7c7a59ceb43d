// ioredis (npm) through its common API; see ../README.md.
"use strict";
const Redis = require("ioredis");
const { CFG, T, expect, sleep, run } = require("./common");
const P = CFG.prefix;

function client(cleanup, opts = {}) {
  const pw = opts.password !== undefined ? opts.password : CFG.password;
  const r = new Redis({
    host: CFG.host, port: CFG.port, db: opts.db || 0, password: pw || undefined,
    connectTimeout: T, commandTimeout: T, maxRetriesPerRequest: 0,
    retryStrategy: () => null, enableOfflineQueue: true,
  });
  r.on("error", () => {}); // reported by the command that fails
  cleanup.push(r);
  return r;
}

const features = {
  async basic(c) {
    const r = client(c);
    expect("PING", await r.ping(), "PONG");
    expect("SET", await r.set(P + "basic", "v1"), "OK");
    expect("GET", await r.get(P + "basic"), "v1");
    expect("INCR", await r.incr(P + "ctr"), 1);
    expect("DEL", await r.del(P + "basic", P + "ctr"), 2);
    expect("GET missing", await r.get(P + "basic"), null);
  },
  async auth(c) {
    const r = client(c, { password: CFG.auth_password });
    expect("PING", await r.ping(), "PONG");
    const bad = client(c, { password: "wrong-password" });
    let accepted = true;
    try { await bad.ping(); } catch (e) { accepted = false; }
    if (accepted) throw new Error("a wrong password was accepted");
  },
  async db(c) {
    const r = client(c, { db: CFG.db });
    expect("SET", await r.set(P + "db", "in-db"), "OK");
    expect("GET", await r.get(P + "db"), "in-db");
    const r0 = client(c);
    expect("GET in db 0", await r0.get(P + "db"), null);
    await r.del(P + "db");
  },
  async pipeline(c) {
    const r = client(c);
    const p = r.pipeline();
    for (let i = 0; i < 100; i++) p.set(`${P}pipe:${i}`, `v${i}`);
    for (let i = 0; i < 100; i++) p.get(`${P}pipe:${i}`);
    const got = (await p.exec()).map(([err, v]) => (err ? "error: " + err.message : v));
    const want = Array(100).fill("OK");
    for (let i = 0; i < 100; i++) want.push(`v${i}`);
    expect("pipeline", got, want);
  },
  async multi_watch(c) {
    const r = client(c), other = client(c);
    const key = P + "watched";
    await r.set(key, "1");
    expect("WATCH", await r.watch(key), "OK");
    expect("GET under WATCH", await r.get(key), "1");
    expect("EXEC", await r.multi().set(key, "2").incr(key).exec(), [[null, "OK"], [null, 3]]);
    expect("after EXEC", await r.get(key), "3");
    await r.watch(key);
    await other.set(key, "changed");
    expect("aborted EXEC", await r.multi().set(key, "lost").exec(), null);
    expect("after aborted EXEC", await r.get(key), "changed");
  },
  async pubsub(c) {
    const sub = client(c), pub = client(c);
    let got = null;
    sub.on("message", (ch, msg) => { got = msg; });
    await sub.subscribe(P + "chan");
    const deadline = Date.now() + T;
    while (got === null && Date.now() < deadline) {
      await pub.publish(P + "chan", "hello");
      await sleep(50);
    }
    expect("message", got, "hello");
  },
  async blpop(c) {
    const r = client(c), other = client(c);
    const key = P + "list";
    await r.ping();
    const waiter = r.blpop(key, Math.floor(T / 1000));
    await sleep(200);
    await other.rpush(key, "wake");
    expect("BLPOP", await waiter, [key, "wake"]);
  },
  async big(c) {
    const r = client(c);
    const v = Buffer.alloc(1 << 20);
    for (let i = 0; i < v.length; i++) v[i] = i & 255;
    expect("SET 1 MiB", await r.set(P + "big", v), "OK");
    expect("GET 1 MiB", (await r.getBuffer(P + "big")).equals(v), true);
    await r.del(P + "big");
  },
  async concurrent(c) {
    const n = CFG.clients;
    const errors = [];
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      try {
        const r = client(c);
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

run("ioredis", require("ioredis/package.json").version, features, (r) => r.disconnect());
