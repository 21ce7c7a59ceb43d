// Shared by the Node.js client scripts: the config, checks, a per-feature
// time bound and the one JSON output line (see ../README.md).
"use strict";

const CFG = JSON.parse(process.argv[2]);
const T = Number(CFG.timeout) * 1000;

function expect(what, got, want) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g.slice(0, 200)}, expected ${w.slice(0, 200)}`);
}

// A feature that neither resolves nor rejects (a client that never
// connects) is reported as a timeout; its connections are then closed by
// the feature's cleanup list.
function bounded(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms (${what})`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(library, version, features, cleanupAll) {
  const results = {};
  for (const name of CFG.features) {
    const cleanup = [];
    try {
      await bounded(features[name](cleanup), 3 * T, name);
      results[name] = "ok";
    } catch (e) {
      results[name] = String((e && e.message) || e).slice(0, 300);
    }
    for (const c of cleanup) {
      try { await bounded(Promise.resolve(cleanupAll(c)), 1000, "close"); } catch (e) { /* already gone */ }
    }
  }
  process.stdout.write(JSON.stringify({ library, version, results }) + "\n", () => process.exit(0));
}

module.exports = { CFG, T, expect, bounded, sleep, run };
