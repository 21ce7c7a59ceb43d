// memcached (npm) through its common API; see ../README.md. The library
// has no noreply mode, so it runs basic, multiget and concurrent only.
"use strict";
const Memcached = require("memcached");
const { CFG, T, expect, run } = require("./common");
const P = CFG.prefix;

function client(cleanup) {
  const m = new Memcached(`${CFG.host}:${CFG.port}`, {
    timeout: T, retries: 0, retry: T, failures: 1, reconnect: T, poolSize: 1,
  });
  cleanup.push(m);
  return m;
}

// The callback API as promises.
const call = (m, method, ...args) => new Promise((resolve, reject) => {
  m[method](...args, (err, v) => (err ? reject(err) : resolve(v)));
});

const features = {
  async basic(c) {
    const m = client(c);
    expect("set", await call(m, "set", P + "basic", "v1", 0), true);
    expect("get", await call(m, "get", P + "basic"), "v1");
    expect("del", await call(m, "del", P + "basic"), true);
    expect("get deleted", await call(m, "get", P + "basic"), undefined);
  },
  async multiget(c) {
    const m = client(c);
    const want = {};
    for (let i = 0; i < 10; i++) want[`${P}mg:${i}`] = `m${i}`;
    for (const [k, v] of Object.entries(want)) expect("set", await call(m, "set", k, v, 0), true);
    const got = await call(m, "getMulti", Object.keys(want).concat([P + "mg:absent"]));
    expect("getMulti", got, want);
  },
  async concurrent(c) {
    const n = CFG.clients;
    const errors = [];
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      try {
        const m = client(c);
        for (let k = 0; k < 10; k++) {
          const key = `${P}conc:${i}:${k}`;
          expect("set", await call(m, "set", key, `${i}-${k}`, 0), true);
          expect("get", await call(m, "get", key), `${i}-${k}`);
        }
      } catch (e) { errors.push(`client ${i}: ${e.message}`); }
    }));
    if (errors.length) throw new Error(`${errors.length} of ${n} clients failed, first: ${errors[0]}`);
  },
};

run("memcached (npm)", require("memcached/package.json").version, features, (m) => m.end());
