// mysql2 (npm) through its promise API; see ../README.md. query() sends
// COM_QUERY (parameters quoted into the text); execute() prepares the
// statement on the server once (COM_STMT_PREPARE, cached per connection)
// and runs it with COM_STMT_EXECUTE.
"use strict";

const mysql = require("mysql2/promise");
const { version } = require("mysql2/package.json");

const CFG = JSON.parse(process.argv[2]);
const T = CFG.table;
const PREPARED = `SELECT id, name FROM ${T} WHERE id = ?`;

function expect(what, got, want) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g.slice(0, 200)}, expected ${w.slice(0, 200)}`);
}

function client(extra = {}) {
  return mysql.createConnection({
    host: CFG.host, port: Number(CFG.port), user: CFG.user, password: CFG.password,
    database: CFG.db, connectTimeout: CFG.timeout * 1000, rowsAsArray: true,
    // TLS without verifying the server's certificate when tls_ca is given.
    ...(CFG.tls_ca ? { ssl: { rejectUnauthorized: false } } : {}), ...extra,
  });
}

const features = {
  async connect() {
    const c = await client();
    const [rows] = await c.query("SELECT 1 + 1, CONNECTION_ID() > 0");
    expect("SELECT", rows, [[2, 1]]);
    await c.end();
    try {
      await (await client({ password: "wrong" })).end();
      throw new Error("a wrong password was accepted");
    } catch (e) {
      expect("wrong password error", e.errno, 1045);
    }
    return rows;
  },
  async crud() {
    const c = await client();
    await c.query(`DROP TABLE IF EXISTS ${T}`);
    await c.query(`CREATE TABLE ${T} (id INT PRIMARY KEY, name VARCHAR(32), score DOUBLE)`);
    const [ok] = await c.query(`INSERT INTO ${T} VALUES (1, 'one', 1.5), (2, 'two', 2.5), (3, 'three', NULL)`);
    expect("affectedRows", ok.affectedRows, 3);
    const [rows] = await c.query(`SELECT id, name, score FROM ${T} ORDER BY id`);
    expect("SELECT", rows, [[1, "one", 1.5], [2, "two", 2.5], [3, "three", null]]);
    await c.end();
    return rows;
  },
  async prepared() {
    const c = await client();
    const out = [];
    for (const id of [1, 3]) out.push((await c.execute(PREPARED, [id]))[0]);
    // query() with parameters: quoted client-side, one COM_QUERY each.
    for (const id of [1, 3]) out.push((await c.query(PREPARED, [id]))[0]);
    expect("ids 1 and 3", out, [[[1, "one"]], [[3, "three"]], [[1, "one"]], [[3, "three"]]]);
    await c.end();
    return out;
  },
  async transaction() {
    const c = await client();
    await c.beginTransaction();
    await c.query(`INSERT INTO ${T} VALUES (4, 'four', 4.5)`);
    const [inside] = await c.query(`SELECT COUNT(*) FROM ${T}`);
    await c.rollback();
    const [after] = await c.query(`SELECT COUNT(*) FROM ${T}`);
    expect("inside", inside, [[4]]);
    expect("after rollback", after, [[3]]);
    await c.end();
    return [inside, after];
  },
  async error() {
    const c = await client();
    let code;
    try {
      await c.query("SELECT * FROM no_such_table");
      throw new Error("no error");
    } catch (e) {
      code = e.errno;
    }
    expect("error code", code, 1146);
    expect("after the error", (await c.query("SELECT 'still usable'"))[0], [["still usable"]]);
    await c.end();
    return code;
  },
  async big() {
    const c = await client();
    const [rows] = await c.query("SELECT seq FROM seq_1_to_10000");
    const got = [rows.length, rows.reduce((s, r) => s + Number(r[0]), 0)];
    expect("10,000 rows", got, [10000, 50005000]);
    await c.end();
    return got;
  },
  async multi() {
    const c = await client({ multipleStatements: true });
    const [sets] = await c.query("SELECT 1; SELECT 2, 3");
    expect("result sets", sets, [[[1]], [[2, 3]]]);
    await c.end();
    return sets;
  },
};

(async () => {
  const results = {}, data = {};
  for (const name of CFG.features) {
    try {
      data[name] = await features[name]();
      results[name] = "ok";
    } catch (e) {
      results[name] = String((e && e.message) || e).slice(0, 300);
    }
  }
  process.stdout.write(JSON.stringify({ library: "mysql2", version, results, data }) + "\n", () => process.exit(0));
})();
