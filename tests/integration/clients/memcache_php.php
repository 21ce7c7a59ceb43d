<?php
// php-memcached (Debian php-memcached) through its common API; see README.md.

$CFG = json_decode($argv[1], true);
$P = $CFG["prefix"];

function client($noreply = false) {
    global $CFG;
    $m = new Memcached();
    $m->setOption(Memcached::OPT_CONNECT_TIMEOUT, (int)($CFG["timeout"] * 1000));
    $m->setOption(Memcached::OPT_RECV_TIMEOUT, (int)($CFG["timeout"] * 1000000));
    $m->setOption(Memcached::OPT_SEND_TIMEOUT, (int)($CFG["timeout"] * 1000000));
    if ($noreply) $m->setOption(Memcached::OPT_NOREPLY, true);
    $m->addServer($CFG["host"], (int)$CFG["port"]);
    return $m;
}

function expect($what, $got, $want) {
    if ($got !== $want) {
        throw new Exception("$what: got " . var_export($got, true) . ", expected " . var_export($want, true));
    }
}

function f_basic() {
    global $P;
    $m = client();
    expect("set", $m->set($P . "basic", "v1"), true);
    expect("get", $m->get($P . "basic"), "v1");
    expect("delete", $m->delete($P . "basic"), true);
    expect("get deleted", $m->get($P . "basic"), false);
    expect("result code", $m->getResultCode(), Memcached::RES_NOTFOUND);
}

function f_noreply() {
    // OPT_NOREPLY: each get right after its set must see the write
    // (per-client order), for `clients` processes at once; 64 KiB values
    // make a set take longer upstream than the get after it. A child's exit
    // code is its number of misses (100: an exception).
    global $CFG, $P;
    $n = (int)$CFG["clients"];
    $pids = [];
    for ($c = 0; $c < $n; $c++) {
        $pid = pcntl_fork();
        if ($pid === 0) {
            try {
                $m = client(true);
                $misses = 0;
                for ($i = 0; $i < 20; $i++) {
                    $v = "w$c:$i:" . str_repeat("x", 64 << 10);
                    $m->set($P . "nr:$c:$i", $v);
                    if ($m->get($P . "nr:$c:$i") !== $v) $misses++;
                }
                exit($misses);
            } catch (Throwable $e) {
                exit(100);
            }
        }
        $pids[] = $pid;
    }
    $misses = 0;
    $failed = 0;
    foreach ($pids as $pid) {
        pcntl_waitpid($pid, $status);
        $code = pcntl_wifexited($status) ? pcntl_wexitstatus($status) : 100;
        if ($code === 100) $failed++; else $misses += $code;
    }
    if ($failed) throw new Exception("$failed of $n clients failed");
    if ($misses) throw new Exception("$misses of " . (20 * $n) . " gets missed the noreply set before them");
}

function f_multiget() {
    global $P;
    $m = client();
    $want = [];
    for ($i = 0; $i < 10; $i++) $want[$P . "mg:$i"] = "m$i";
    foreach ($want as $k => $v) expect("set", $m->set($k, $v), true);
    $got = $m->getMulti(array_merge(array_keys($want), [$P . "mg:absent"]));
    expect("getMulti", $got, $want);
}

function f_concurrent() {
    global $CFG, $P;
    $n = (int)$CFG["clients"];
    $pids = [];
    for ($i = 0; $i < $n; $i++) {
        $pid = pcntl_fork();
        if ($pid === 0) {
            $m = client();
            for ($k = 0; $k < 10; $k++) {
                $key = $P . "conc:$i:$k";
                if ($m->set($key, "$i-$k") !== true || $m->get($key) !== "$i-$k") exit(1);
            }
            exit(0);
        }
        $pids[] = $pid;
    }
    $failed = 0;
    foreach ($pids as $pid) {
        pcntl_waitpid($pid, $status);
        if (!pcntl_wifexited($status) || pcntl_wexitstatus($status) !== 0) $failed++;
    }
    if ($failed) throw new Exception("$failed of $n clients failed");
}

$results = [];
foreach ($CFG["features"] as $name) {
    try {
        call_user_func("f_" . $name);
        $results[$name] = "ok";
    } catch (Throwable $e) {
        $results[$name] = substr(get_class($e) . ": " . $e->getMessage(), 0, 300);
    }
}
echo json_encode(["library" => "php-memcached", "version" => phpversion("memcached"), "results" => $results]), "\n";
