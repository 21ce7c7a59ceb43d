-- A SOCKS4 proxy as a Lua route hook (config/examples/socks4.yaml), the
-- seven-line ProxyMachine example: read the client's CONNECT request
--   VN=4 CD=1 DSTPORT(2) DSTIP(4) USERID NUL
-- answer "request granted" (0x00 0x5a + port + address), proxy to
-- DSTIP:DSTPORT and pass on what the client sent after the request.
-- SOCKS4a (a host name after the user id) is not handled: such requests,
-- and anything that is not CONNECT, get "request rejected" (0x5b).
function route(data, client)
  local nul = data:find("\0", 9, true)
  if #data < 9 or not nul then return { noop = true } end     -- not all of it yet
  local vn, cd, port, a, b, c, d = string.unpack(">BBI2BBBB", data)
  if vn ~= 4 or cd ~= 1 or (a == 0 and b == 0 and c == 0) then
    return { close = "\0\x5b" .. data:sub(3, 8) }
  end
  return { remote = string.format("%d.%d.%d.%d:%d", a, b, c, d, port),
           reply = "\0\x5a" .. data:sub(3, 8), data = data:sub(nul + 1) }
end
