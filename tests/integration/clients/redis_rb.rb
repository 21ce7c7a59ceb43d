# redis-rb (Debian ruby-redis) through its common API; see README.md.
require "json"
require "redis"

CFG = JSON.parse(ARGV[0])
P = CFG["prefix"]
T = CFG["timeout"].to_f

def client(db: 0, password: nil)
  pw = password.nil? ? CFG["password"] : password
  Redis.new(host: CFG["host"], port: CFG["port"], db: db, password: (pw == "" ? nil : pw),
            timeout: T, reconnect_attempts: 0)
end

def expect(what, got, want)
  raise "#{what}: got #{got.inspect}, expected #{want.inspect}" unless got == want
end

def f_basic
  r = client
  expect("PING", r.ping, "PONG")
  expect("SET", r.set(P + "basic", "v1"), "OK")
  expect("GET", r.get(P + "basic"), "v1")
  expect("INCR", r.incr(P + "ctr"), 1)
  expect("DEL", r.del(P + "basic", P + "ctr"), 2)
  expect("GET missing", r.get(P + "basic"), nil)
  r.close
end

def f_auth
  r = client(password: CFG["auth_password"])
  expect("PING", r.ping, "PONG")
  r.close
  bad = client(password: "wrong-password")
  begin
    bad.ping
  rescue Redis::CommandError
    return
  ensure
    bad.close
  end
  raise "a wrong password was accepted"
end

def f_db
  r = client(db: CFG["db"].to_i)
  expect("SET", r.set(P + "db", "in-db"), "OK")
  expect("GET", r.get(P + "db"), "in-db")
  r0 = client
  expect("GET in db 0", r0.get(P + "db"), nil)
  r.del(P + "db")
  r.close
  r0.close
end

def f_pipeline
  r = client
  got = r.pipelined do |p|
    100.times { |i| p.set("#{P}pipe:#{i}", "v#{i}") }
    100.times { |i| p.get("#{P}pipe:#{i}") }
  end
  expect("pipeline", got, ["OK"] * 100 + (0...100).map { |i| "v#{i}" })
  r.close
end

def f_multi_watch
  r = client
  other = client
  key = P + "watched"
  r.set(key, "1")
  got = r.watch(key) do |rw|
    expect("GET under WATCH", rw.get(key), "1")
    rw.multi do |tx|
      tx.set(key, "2")
      tx.incr(key)
    end
  end
  expect("EXEC", got, ["OK", 3])
  expect("after EXEC", r.get(key), "3")
  got = r.watch(key) do |rw|
    other.set(key, "changed")
    rw.multi { |tx| tx.set(key, "lost") }
  end
  expect("aborted EXEC", got, nil)
  expect("after aborted EXEC", r.get(key), "changed")
  r.close
  other.close
end

def f_pubsub
  sub = client
  pub = client
  got = nil
  publisher = Thread.new do
    deadline = Time.now + T
    while got.nil? && Time.now < deadline
      pub.publish(P + "chan", "hello")
      sleep 0.1
    end
  end
  sub.subscribe_with_timeout(T, P + "chan") do |on|
    on.message do |_chan, msg|
      got = msg
      sub.unsubscribe
    end
  end
  publisher.join
  expect("message", got, "hello")
  sub.close
  pub.close
end

def f_blpop
  r = client
  other = client
  key = P + "list"
  t = Thread.new { sleep 0.2; other.rpush(key, "wake") }
  got = r.blpop(key, timeout: T.to_i)
  t.join
  expect("BLPOP", got, [key, "wake"])
  r.close
  other.close
end

def f_big
  r = client
  v = ((0..255).map(&:chr).join * 4096).b
  expect("SET 1 MiB", r.set(P + "big", v), "OK")
  expect("GET 1 MiB", r.get(P + "big").b == v, true)
  r.del(P + "big")
  r.close
end

def f_concurrent
  n = CFG["clients"].to_i
  errors = Queue.new
  threads = (0...n).map do |i|
    Thread.new do
      begin
        r = client
        10.times do |k|
          key = "#{P}conc:#{i}:#{k}"
          expect("SET", r.set(key, "#{i}-#{k}"), "OK")
          expect("GET", r.get(key), "#{i}-#{k}")
        end
        r.close
      rescue StandardError => e
        errors << "client #{i}: #{e.message}"
      end
    end
  end
  threads.each(&:join)
  raise "#{errors.size} of #{n} clients failed, first: #{errors.pop}" unless errors.empty?
end

results = {}
CFG["features"].each do |name|
  begin
    send("f_#{name}")
    results[name] = "ok"
  rescue StandardError => e
    results[name] = "#{e.class}: #{e.message}"[0, 300]
  end
end
puts JSON.generate({ library: "redis-rb", version: Redis::VERSION, results: results })
