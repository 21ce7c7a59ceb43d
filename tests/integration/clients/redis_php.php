<?php
// phpredis (Debian php-redis) through its common API; see README.md.

$CFG = json_decode($argv[1], true);
$P = $CFG["prefix"];
$T = (float)$CFG["timeout"];

// Every client made, so that a failed feature can report the last server
// error (phpredis returns false for an error reply and keeps the text).
$CLIENTS = [];

function client($db = 0, $password = null) {
    global $CFG, $T, $CLIENTS;
    $r = new Redis();
    $CLIENTS[] = $r;
    if (!$r->connect($CFG["host"], (int)$CFG["port"], $T)) {
        throw new Exception("connect failed");
    }
    $r->setOption(Redis::OPT_READ_TIMEOUT, $T);
    $pw = $password === null ? $CFG["password"] : $password;
    if ($pw !== "") {
        if ($r->auth($pw) !== true) {
            throw new Exception("AUTH returned false: " . $r->getLastError());
        }
    }
    if ($db !== 0) {
        if ($r->select($db) !== true) {
            throw new Exception("SELECT returned false: " . $r->getLastError());
        }
    }
    return $r;
}

function expect($what, $got, $want) {
    if ($got !== $want) {
        throw new Exception("$what: got " . var_export($got, true) . ", expected " . var_export($want, true));
    }
}

function f_basic() {
    global $P;
    $r = client();
    expect("PING", $r->ping(), true);
    expect("SET", $r->set($P . "basic", "v1"), true);
    expect("GET", $r->get($P . "basic"), "v1");
    expect("INCR", $r->incr($P . "ctr"), 1);
    expect("DEL", $r->del($P . "basic", $P . "ctr"), 2);
    expect("GET missing", $r->get($P . "basic"), false);
    $r->close();
}

function f_auth() {
    global $CFG;
    $r = client(0, $CFG["auth_password"]);
    expect("PING", $r->ping(), true);
    $r->close();
    $bad = new Redis();
    $bad->connect($CFG["host"], (int)$CFG["port"], 3.0);
    try {
        $ok = $bad->auth("wrong-password");
    } catch (RedisException $e) {
        $ok = false;
    }
    if ($ok !== false) {
        throw new Exception("a wrong password was accepted");
    }
    $bad->close();
}

function f_db() {
    global $CFG, $P;
    $r = client((int)$CFG["db"]);
    expect("SET", $r->set($P . "db", "in-db"), true);
    expect("GET", $r->get($P . "db"), "in-db");
    $r0 = client();
    expect("GET in db 0", $r0->get($P . "db"), false);
    $r->del($P . "db");
}

function f_pipeline() {
    global $P;
    $r = client();
    $p = $r->pipeline();
    for ($i = 0; $i < 100; $i++) $p->set($P . "pipe:$i", "v$i");
    for ($i = 0; $i < 100; $i++) $p->get($P . "pipe:$i");
    $got = $p->exec();
    $want = array_fill(0, 100, true);
    for ($i = 0; $i < 100; $i++) $want[] = "v$i";
    expect("pipeline", $got, $want);
}

function f_multi_watch() {
    global $P;
    $r = client();
    $other = client();
    $key = $P . "watched";
    $r->set($key, "1");
    expect("WATCH", $r->watch($key), true);
    expect("GET under WATCH", $r->get($key), "1");
    $got = $r->multi()->set($key, "2")->incr($key)->exec();
    expect("EXEC", $got, [true, 3]);
    expect("after EXEC", $r->get($key), "3");
    $r->watch($key);
    $other->set($key, "changed");
    $got = $r->multi()->set($key, "lost")->exec();
    expect("aborted EXEC", $got, false);
    expect("after aborted EXEC", $r->get($key), "changed");
}

function f_pubsub() {
    global $CFG, $P, $T;
    // subscribe() blocks in its callback loop: the publisher is a child
    // process that publishes until the subscriber has its message.
    $pid = pcntl_fork();
    if ($pid === 0) {
        $pub = client();
        $deadline = microtime(true) + $T;
        while (microtime(true) < $deadline) {
            $pub->publish($P . "chan", "hello");
            usleep(100000);
        }
        exit(0);
    }
    $sub = client();
    $got = null;
    $ret = null;
    try {
        $ret = $sub->subscribe([$P . "chan"], function ($redis, $chan, $msg) use (&$got) {
            $got = $msg;
            $redis->close();
        });
    } catch (RedisException $e) {
        // close() inside the callback ends subscribe() with an exception
        if ($got === null) throw $e;
    } finally {
        posix_kill($pid, SIGKILL);
        pcntl_waitpid($pid, $status);
    }
    if ($got === null) throw new Exception("SUBSCRIBE returned " . var_export($ret, true) . " without a message");
    expect("message", $got, "hello");
}

function f_blpop() {
    global $P;
    $key = $P . "list";
    $pid = pcntl_fork();
    if ($pid === 0) {
        usleep(200000);
        $o = client();
        $o->rpush($key, "wake");
        exit(0);
    }
    $r = client();
    $got = $r->blPop([$key], 3);
    pcntl_waitpid($pid, $status);
    expect("BLPOP", $got, [$key, "wake"]);
}

function f_big() {
    global $P;
    $r = client();
    $v = str_repeat(implode("", array_map("chr", range(0, 255))), 4096);
    expect("SET 1 MiB", $r->set($P . "big", $v), true);
    expect("GET 1 MiB", $r->get($P . "big") === $v, true);
    $r->del($P . "big");
}

function f_concurrent() {
    global $CFG, $P;
    $n = (int)$CFG["clients"];
    $pids = [];
    for ($i = 0; $i < $n; $i++) {
        $pid = pcntl_fork();
        if ($pid === 0) {
            try {
                $r = client();
                for ($k = 0; $k < 10; $k++) {
                    $key = $P . "conc:$i:$k";
                    if ($r->set($key, "$i-$k") !== true || $r->get($key) !== "$i-$k") exit(1);
                }
                exit(0);
            } catch (Throwable $e) {
                exit(2);
            }
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
    $CLIENTS = [];
    try {
        call_user_func("f_" . $name);
        $results[$name] = "ok";
    } catch (Throwable $e) {
        $server = "";
        foreach ($CLIENTS as $c) {
            try {
                $err = $c->getLastError();
            } catch (Throwable $e2) {
                $err = null;
            }
            if ($err !== null) $server = " (server error: $err)";
        }
        $results[$name] = substr(get_class($e) . ": " . $e->getMessage() . $server, 0, 300);
    }
}
echo json_encode(["library" => "phpredis", "version" => phpversion("redis"), "results" => $results]), "\n";
