-- An IP block list as a Lua on_connect hook (config/examples/blocklist.yaml).
-- A client whose address is in the table is closed before any byte reaches
-- Redis, logged at level 2 with the reason, and counted as refused
-- ("script") in the statistics. Edit the table and send SIGHUP: new clients
-- meet the new list, connected ones are not disturbed.
local blocked = {
  ["127.0.0.2"] = true,
  ["192.0.2.10"] = true,
  ["2001:db8::10"] = true,
}

function on_connect(client)
  if blocked[client.addr] then
    return false, "blocked"
  end
end
