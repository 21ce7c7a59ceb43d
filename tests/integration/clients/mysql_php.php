<?php
// PHP mysqli and PDO_MySQL (Debian php-mysql, mysqlnd) through their common
// API; see README.md. The config's "library" picks one: "mysqli" or "pdo"
// (PDO with ATTR_EMULATE_PREPARES false: server-side prepared statements,
// which PDO then uses for query() as well).

$CFG = json_decode($argv[1], true);
$LIB = $CFG["library"];
$T = $CFG["table"];
$PREPARED = "SELECT id, name FROM $T WHERE id = ?";

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

function expect($what, $got, $want) {
    if ($got !== $want) {
        throw new Exception("$what: got " . json_encode($got) . ", expected " . json_encode($want));
    }
}

function client($password = null) {
    global $CFG, $LIB;
    $pw = $password === null ? $CFG["password"] : $password;
    if ($LIB === "mysqli") {
        $c = mysqli_init();
        $c->options(MYSQLI_OPT_CONNECT_TIMEOUT, (int)$CFG["timeout"]);
        $c->options(MYSQLI_OPT_READ_TIMEOUT, (int)$CFG["timeout"]);
        $c->options(MYSQLI_OPT_INT_AND_FLOAT_NATIVE, true);
        // TLS without verifying the server's certificate when tls_ca is given.
        $flags = empty($CFG["tls_ca"]) ? 0 : MYSQLI_CLIENT_SSL | MYSQLI_CLIENT_SSL_DONT_VERIFY_SERVER_CERT;
        $c->real_connect($CFG["host"], $CFG["user"], $pw, $CFG["db"], (int)$CFG["port"], null, $flags);
        return $c;
    }
    $opts = [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_EMULATE_PREPARES => false,
             PDO::ATTR_TIMEOUT => (int)$CFG["timeout"], PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_NUM];
    if (!empty($CFG["tls_ca"])) {
        $opts[PDO::MYSQL_ATTR_SSL_CA] = $CFG["tls_ca"];
        $opts[PDO::MYSQL_ATTR_SSL_VERIFY_SERVER_CERT] = false;
    }
    return new PDO("mysql:host={$CFG['host']};port={$CFG['port']};dbname={$CFG['db']}", $CFG["user"], $pw, $opts);
}

// Every row of one SELECT, as lists.
function q($c, $sql) {
    global $LIB;
    if ($LIB === "mysqli") {
        return $c->query($sql)->fetch_all(MYSQLI_NUM);
    }
    return $c->query($sql)->fetchAll();
}

function error_code($e) {
    // mysqli_sql_exception: getCode() is the MySQL code; PDOException: errorInfo[1].
    return $e instanceof PDOException ? $e->errorInfo[1] : $e->getCode();
}

function f_connect() {
    $c = client();
    $got = q($c, "SELECT 1 + 1, CONNECTION_ID() > 0");
    expect("SELECT", $got, [[2, 1]]);
    try {
        client("wrong");
        throw new Exception("a wrong password was accepted");
    } catch (mysqli_sql_exception | PDOException $e) {
        expect("wrong password error", error_code($e), 1045);
    }
    return $got;
}

function f_crud() {
    global $T, $LIB;
    $c = client();
    $c->query("DROP TABLE IF EXISTS $T");
    $c->query("CREATE TABLE $T (id INT PRIMARY KEY, name VARCHAR(32), score DOUBLE)");
    if ($LIB === "mysqli") {
        $c->query("INSERT INTO $T VALUES (1, 'one', 1.5), (2, 'two', 2.5), (3, 'three', NULL)");
        expect("affected", $c->affected_rows, 3);
    } else {
        expect("affected", $c->exec("INSERT INTO $T VALUES (1, 'one', 1.5), (2, 'two', 2.5), (3, 'three', NULL)"), 3);
    }
    $got = q($c, "SELECT id, name, score FROM $T ORDER BY id");
    expect("SELECT", $got, [[1, "one", 1.5], [2, "two", 2.5], [3, "three", null]]);
    return $got;
}

function f_prepared() {
    global $PREPARED, $LIB;
    $c = client();
    $out = [];
    $s = $c->prepare($PREPARED);
    foreach ([1, 3] as $id) {
        if ($LIB === "mysqli") {
            $s->bind_param("i", $id);
            $s->execute();
            $out[] = $s->get_result()->fetch_all(MYSQLI_NUM);
        } else {
            $s->execute([$id]);
            $out[] = $s->fetchAll();
        }
    }
    expect("ids 1 and 3", $out, [[[1, "one"]], [[3, "three"]]]);
    return $out;
}

function f_transaction() {
    global $T, $LIB;
    $c = client();
    if ($LIB === "mysqli") {
        $c->begin_transaction();
    } else {
        $c->beginTransaction();
    }
    $c->query("INSERT INTO $T VALUES (4, 'four', 4.5)");
    $inside = q($c, "SELECT COUNT(*) FROM $T");
    if ($LIB === "mysqli") {
        $c->rollback();
    } else {
        $c->rollBack();
    }
    $after = q($c, "SELECT COUNT(*) FROM $T");
    expect("inside", $inside, [[4]]);
    expect("after rollback", $after, [[3]]);
    return [$inside, $after];
}

function f_error() {
    $c = client();
    try {
        q($c, "SELECT * FROM no_such_table");
        throw new Exception("no error");
    } catch (mysqli_sql_exception | PDOException $e) {
        $code = error_code($e);
    }
    expect("error code", $code, 1146);
    expect("after the error", q($c, "SELECT 'still usable'"), [["still usable"]]);
    return $code;
}

function f_big() {
    $r = q(client(), "SELECT seq FROM seq_1_to_10000");
    $got = [count($r), array_sum(array_column($r, 0))];
    expect("10,000 rows", $got, [10000, 50005000]);
    return $got;
}

function f_multi() {
    global $LIB;
    $c = client();
    $got = [];
    if ($LIB === "mysqli") {
        $c->multi_query("SELECT 1; SELECT 2, 3");
        do {
            $r = $c->store_result();
            $got[] = $r->fetch_all(MYSQLI_NUM);
        } while ($c->more_results() && $c->next_result());
    } else {
        // Server-side prepares cannot hold several statements: PDO sends
        // them as one COM_QUERY only with emulated prepares.
        $c->setAttribute(PDO::ATTR_EMULATE_PREPARES, true);
        $s = $c->query("SELECT 1; SELECT 2, 3");
        do {
            $got[] = $s->fetchAll();
        } while ($s->nextRowset());
    }
    expect("result sets", $got, [[[1]], [[2, 3]]]);
    return $got;
}

$results = [];
$data = [];
foreach ($CFG["features"] as $name) {
    try {
        $data[$name] = call_user_func("f_" . $name);
        $results[$name] = "ok";
    } catch (Throwable $e) {
        $results[$name] = get_class($e) . ": " . $e->getMessage();
    }
}
$version = $LIB === "mysqli" ? mysqli_get_client_info() : "PDO " . PHP_VERSION . " " . mysqli_get_client_info();
echo json_encode(["library" => $LIB === "mysqli" ? "mysqli" : "PDO_MySQL", "version" => $version,
                  "results" => $results, "data" => (object)$data]), "\n";
