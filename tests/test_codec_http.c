/* http codec tests: requests and responses split at every byte,
 * malformed input (every refusal of RFC 9112 strictness), limits, leading
 * empty lines, framing flags, 100-continue, reply bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "suites.h"

/* Same value as HTTP_PRIV_EXPECT in codec_http.c: the request asked for
 * "100 Continue". */
#define HTTP_EXPECT CODEC_INFO_PRIVATE(2)

/* -------------------------------------------------------------------- http */

static const struct sample http_requests[] = {
    { S("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.4.0\r\n"
        "Accept: */*\r\n\r\n"), 0, false, false },
    { S("POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 13\r\n\r\nhello=world&x"), 0, false, false },
    { S("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;name=val;x=\"y\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
        "X-Checksum: abc\r\nX-Other: 1\r\n\r\n"), 0, false, false },
    /* chunked in any case, SP around it; chunk-ext after BWS; data "\r\n" */
    { S("PUT /z HTTP/1.1\r\nHost: x\r\ntransfer-encoding:  CHUNKED  \r\n\r\n"
        "2 \t; ext\r\n\r\n\r\n0\r\n\r\n"), 0, false, false },
    { S("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\ncontent-length: 4\r\n\r\n0\r\n\r"),
      CODEC_INFO_CONTINUE | HTTP_EXPECT, false, false },
    { S("POST /z HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), 0, false, false },
    { S("POST /lead HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\nabcdefg"), 0, false, false },
    { S("HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_HEAD, false, false },
    { S("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), CODEC_INFO_CLOSE, false, false },
    { S("GET / HTTP/1.1\r\nHost: x\r\nConnection: TE, Close\r\n\r\n"), CODEC_INFO_CLOSE, false, false },
    { S("GET / HTTP/1.0\r\n\r\n"), CODEC_INFO_CLOSE, false, false },
    { S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0, false, false },
    /* an empty line before a request is a message of its own, dropped */
    { S("\r\n"), CODEC_INFO_SKIP, false, false },
    { S("GET /after-crlf HTTP/1.1\r\nHost:x\r\nX-Empty:\r\n\r\n"), 0, false, false },
    /* methods of A-Z, '-' and '_'; absolute-form; any visible ASCII in the target */
    { S("M-SEARCH /ssdp HTTP/1.1\r\nHost: x\r\n\r\n"), 0, false, false },
    { S("X_CUSTOM /a%20b?c=d&e=[f]#g HTTP/1.1\r\nHost: x\r\n\r\n"), 0, false, false },
    { S("GET http://example.com:8080/x?y HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), 0, false, false },
    /* HTAB and obs-text in a field value; '_' in other names */
    { S("GET / HTTP/1.1\r\nHost: x\r\nX-Tab: a\tb\t\r\nX-Latin: caf\xe9 \x80\xff\r\nX_Under: 1\r\n\r\n"),
      0, false, false },
};

static const struct sample http_responses[] = {
    { S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"), 0, false, false },
    { S("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"), HTTP_HEAD, false, false },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_HEAD, false, false },
    { S("HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0, false, false },
    { S("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"), 0, false, true },
    { S("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"), 0, false, true },
    { S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"), 0, false, false },
    /* HTTP/1.0 with Transfer-Encoding: framed as chunked, then closed */
    { S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
      0, false, true },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"), CODEC_INFO_CLOSE, false, true },
    /* not stricter than framing needs: bare LF, control characters but NUL */
    { S("HTTP/1.1 200 OK\nContent-Length: 2\nX-Ctl: a\x01\x1b\x7f\tb\n\nhi"), 0, false, false },
    /* until close */
    { S("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>body</html>\r\n\r\n"), 0, true, true },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz"), 0, true, true },
};

static const struct bad http_bad_requests[] = {
    /* refusals name the method once the request line is in */
    { S("PATCH / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), 0,
      "\"PATCH\": both content-length and transfer-encoding" },
    { S("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"), 0, "\"GET\": protocol upgrade not supported" },
    { S("CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "\"CONNECT\": CONNECT not supported" },
    { S("G@T / HTTP/1.1\r\n\r\n"), 0, "\"G@T\": bad method" },
    { S("ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n\r\n"), 0, "\"ABCDEFGHIJKLMNOP...\": missing host" },
    /* RFC 9112 6.1: HTTP/1.0 with Transfer-Encoding has faulty framing */
    { S("POST /old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 0,
      "transfer-encoding in an HTTP/1.0 request" },
    { S("POST /old HTTP/1.0\r\nConnection: keep-alive\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n"), 0, "transfer-encoding in an HTTP/1.0 request" },
    /* the audit's smuggling bytes: a bare CR ends a line for Python's
     * http.server, not for Proximux */
    { S("POST / HTTP/1.1\r\nHost: a\r\nX: y\r\r\nContent-Length: 35\r\n\r\n"
        "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bare CR" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: 60\r\n\r\n"), 0, "bare CR" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: y\rz"), 0, "bare CR" },  /* ...even before the line ends */
    { S("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bare CR" },
    { S("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), 0, "bare CR" },
    { S("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bare CR" },
    /* bare LF line ends (once accepted as a sample: "GET / HTTP/1.1\nHost: x\n\n") */
    { S("GET / HTTP/1.1\nHost: x\n\n"), 0, "bare LF" },
    { S("GET / HTTP/1.1\r\nHost: x\n\r\n"), 0, "bare LF" },
    { S("GET / HTTP/1.1\r\nHost: x\r\n\n"), 0, "bare LF" },
    { S("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, "bare LF" },
    { S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"), 0, "bare LF" },
    { S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n"), 0, "bare LF" },
    { S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n"), 0, "bare LF" },
    /* NUL and other control characters, in every part of the head */
    { S("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: \0"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bz\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0cz\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1bz\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1fz\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n"), 0, "control character" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nX\x01: a\r\n\r\n"), 0, "control character" },
    { S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=\x01\r\nabc\r\n0\r\n\r\n"),
      0, "control character" },
    { S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \0\r\n\r\n"),
      0, "control character" },
    /* request line */
    { S("GET /\r\n\r\n"), 0, "missing HTTP version" },
    { S("GET / FOO\r\n\r\n"), 0, "missing HTTP version" },
    { S("GET / http/1.1\r\nHost: a\r\n\r\n"), 0, "missing HTTP version" },
    { S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 0, "missing HTTP version" },
    { S("GET / HTTP/2.0\r\n\r\n"), 0, "unsupported HTTP version" },
    { S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 0, "unsupported HTTP version" },
    { S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 0, "unsupported HTTP version" },
    { S("GET / HTTP/0.9\r\n\r\n"), 0, "unsupported HTTP version" },
    { S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, "unsupported HTTP version" },
    { S("GET\r\n\r\n"), 0, "bad request line" },
    { S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad method" },
    { S(" GET / HTTP/1.1\r\n\r\n"), 0, "bad method" },
    { S("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad method" },
    { S("Get / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad method" },
    { S("G(T / HTTP/1.1\r\n\r\n"), 0, "bad method" },
    { S("GET2 / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad method" },
    { S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET /a\xa0 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET ?x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    { S("GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 0, "bad request target" },
    /* tunnels and protocol switches: refused, and the client closed */
    { S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 0, "CONNECT not supported" },
    { S("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
      0, "protocol upgrade not supported" },
    { S("GET / HTTP/1.1\r\nHost: x\r\nupgrade: h2c\r\n\r\n"), 0, "protocol upgrade not supported" },
    { S("GET / HTTP/1.0\r\nUpgrade: x\r\n\r\n"), 0, "protocol upgrade not supported" },
    /* header lines */
    { S("GET / HTTP/1.1\r\nHost x\r\n\r\n"), 0, "header without colon" },
    { S("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), 0, "folded" },
    { S("GET / HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n"), 0, "folded" },
    { S("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 0, "bad header name" },
    { S("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 0, "bad header name" },
    { S("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n"), 0, "bad header name" },
    { S("GET / HTTP/1.1\r\n: x\r\n\r\n"), 0, "bad header name" },
    { S("GET / HTTP/1.1\r\nX\xff: x\r\n\r\n"), 0, "bad header name" },
    /* Host: required for HTTP/1.1, once */
    { S("GET / HTTP/1.1\r\n\r\n"), 0, "missing host" },
    { S("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), 0, "missing host" },
    { S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 0, "duplicate host" },
    { S("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 0, "duplicate host" },
    /* Content-Length: digits, once */
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
      0, "duplicate content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
      0, "duplicate content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3,\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t3\r\n\r\nabc"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\t\r\n\r\nabc"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc"), 0, "invalid content-length" },
    /* Transfer-Encoding: exactly one field, exactly "chunked" */
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"),
      0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
      0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
      0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n"),
      0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tchunked\r\n\r\n0\r\n\r\n"),
      0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n"),
      0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"),
      0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), 0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), 0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), 0, "transfer-coding not implemented" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
      0, "duplicate transfer-encoding" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
      0, "duplicate transfer-encoding" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, "both" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 0, "both" },
    { S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 0, "both" },
    /* framing names some servers read with '_' for '-' */
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n"), 0, "underscore" },
    { S("POST / HTTP/1.1\r\nHost: a\r\ntransfer_encoding: chunked\r\n\r\n"), 0, "underscore" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer_Encoding: x\r\n\r\n"),
      0, "underscore" },
    /* chunked body */
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 0, "bad chunk size" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n"), 0, "bad chunk size" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\n"), 0, "bad chunk size" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX"), 0, "bad chunk terminator" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n"),
      0, "bad chunk terminator" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad\r\n\r\n"), 0, "bad trailer" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n folded: x\r\n\r\n"),
      0, "bad trailer" },
    /* oversized */
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n"),
      0, "chunk size too long" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\n"),
      0, "chunk size too long" },
    { S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000\r\n\r\n"), 0, "invalid content-length" },
};

static const struct bad http_bad_responses[] = {
    { S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), 0, "protocol upgrade not supported" },
    { S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"), 0, "protocol upgrade" },
    { S("HTTP/1.1 20 OK\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/1.1 200OK\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/2 200\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/1.1 099 x\r\n\r\n"), 0, "bad status line" },
    { S("FOO\r\n\r\n"), 0, "bad status line" },
    { S("\r\nHTTP/1.1 200 OK\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, "both" },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"), 0, "both" },
    { S("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), 0, "invalid content-length" },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nhi"), 0, "invalid content-length" },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi"), 0, "duplicate content-length" },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi"), 0, "duplicate content-length" },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 0, "chunked is not the last" },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcX"), 0, "bad chunk terminator" },
    /* bare CR and NUL: a client would see other lines than Proximux */
    { S("HTTP/1.1 200 OK\r\nX: y\rContent-Length: 0\r\n\r\n"), 0, "bare CR" },
    { S("HTTP/1.1 200 OK\r\nX: y\r\r\nContent-Length: 0\r\n\r\n"), 0, "bare CR" },
    { S("HTTP/1.1 200 OK\rX: y\r\n\r\n"), 0, "bare CR" },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r;\r\nab\r\n0\r\n\r\n"), 0, "bare CR" },
    { S("HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n"), 0, "NUL" },
    { S("HTTP/1.1 200 OK\0\r\n\r\n"), 0, "NUL" },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \0\r\n\r\n"), 0, "NUL" },
};

START_TEST(test_http_requests)
{
    check_samples(&codec_http, false, http_requests, PMX_ARRAY_LEN(http_requests));
    check_streams(&codec_http, false, http_requests, PMX_ARRAY_LEN(http_requests));
}
END_TEST

START_TEST(test_http_responses)
{
    check_samples(&codec_http, true, http_responses, PMX_ARRAY_LEN(http_responses));
    /* the until-close responses cannot be followed by another one */
    check_streams(&codec_http, true, http_responses, PMX_ARRAY_LEN(http_responses) - 2);
}
END_TEST

START_TEST(test_http_big)
{
    size_t len;
    char *post = make_big("POST /blob HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
                          1048576, '\n', "", &len);
    struct sample s = { post, len, 0, false, false };
    check_sample(&codec_http, false, &s, 0);
    char *resp = make_big("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n",
                          1048576, '0', "\r\n0\r\n\r\n", &len);
    struct sample r = { resp, len, 0, false, false };
    check_sample(&codec_http, true, &r, 0);
    free(resp);
    free(post);
}
END_TEST

START_TEST(test_http_bad)
{
    check_bad(&codec_http, false, http_bad_requests, PMX_ARRAY_LEN(http_bad_requests));
    check_bad(&codec_http, true, http_bad_responses, PMX_ARRAY_LEN(http_bad_responses));
    /* the limits themselves are accepted */
    expect_whole(&codec_http, false, 0,
                 S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\nab"),
                 CODEC_MORE, 75);
    expect_whole(&codec_http, false, 0,
                 S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999\r\n\r\nab"), CODEC_MORE, 63);
    /* headers are consumed line by line, bodies as they arrive */
    expect_whole(&codec_http, false, 0, S("GET / HTTP/1.1\r\nHost: x\r\nAcc"), CODEC_MORE, 25);
    expect_whole(&codec_http, true, 0, S("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), CODEC_MORE, 42);
    /* a CR that may yet be followed by LF waits */
    expect_whole(&codec_http, false, 0, S("GET / HTTP/1.1\r\nHost: x\r"), CODEC_MORE, 16);
    expect_whole(&codec_http, false, 0, S("\r"), CODEC_MORE, 0);
}
END_TEST

/* A request head "GET / HTTP/1.1", "Host: x", then one header line of each
 * length in lens[] (CRLF included, at least 8), then the empty line. */
static char *http_head_of(const size_t *lens, size_t n, size_t *len)
{
    static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\n";
    size_t total = sizeof(start) - 1 + 2;

    for (size_t i = 0; i < n; i++)
        total += lens[i];
    char *m = malloc(total);
    ck_assert_ptr_nonnull(m);
    memcpy(m, start, sizeof(start) - 1);
    size_t off = sizeof(start) - 1;
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_ge(lens[i], 8);
        int hn = snprintf(m + off, lens[i], "X-%03zu: ", i % 1000);
        ck_assert_int_eq(hn, 7);
        memset(m + off + 7, 'v', lens[i] - 9);
        memcpy(m + off + lens[i] - 2, "\r\n", 2);
        off += lens[i];
    }
    memcpy(m + off, "\r\n", 2);
    *len = total;
    return m;
}

/* The head of http_head_of() is a well-formed request, or refused with
 * error. */
static void expect_head(const size_t *lens, size_t n, const char *error)
{
    size_t len;
    char *m = http_head_of(lens, n, &len);

    if (error == NULL) {
        struct sample s = { m, len, 0, false, false };
        check_sample(&codec_http, false, &s, 0);
    } else {
        struct bad b = { m, len, 0, error };
        check_bad(&codec_http, false, &b, 1);
    }
    free(m);
}

START_TEST(test_http_limits)
{
    size_t len, lens[110];
    char *m;

    /* a request line of 8192 bytes with its CRLF, not one more */
    m = make_big("GET /", 8192 - 16, 'a', " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
    struct sample line_ok = { m, len, 0, false, false };
    check_sample(&codec_http, false, &line_ok, 0);
    free(m);
    m = make_big("GET /", 8193 - 16, 'a', " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
    struct bad line_bad[] = { { m, len, 0, "request line too long" },
                              { m, 8192, 0, "request line too long" } };  /* before its end */
    check_bad(&codec_http, false, line_bad, PMX_ARRAY_LEN(line_bad));
    free(m);
    /* a header line of 8192 bytes with its CRLF, not one more */
    lens[0] = 8192;
    expect_head(lens, 1, NULL);
    lens[0] = 8193;
    expect_head(lens, 1, "header line too long");
    m = make_big("GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", 64 * 1024, 'b', "", &len);
    expect_whole(&codec_http, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    /* 100 header fields (Host one of them), not 101 */
    for (size_t i = 0; i < PMX_ARRAY_LEN(lens); i++)
        lens[i] = 10;
    expect_head(lens, 99, NULL);
    expect_head(lens, 100, "too many header fields");
    /* nginx moves a line that does not fit in its buffer to the next one
     * (a 1 KiB buffer, then four of 8 KiB): five lines of 4096 bytes take
     * three buffers, five of 4097 would take five */
    for (size_t i = 0; i < 5; i++)
        lens[i] = 4096;
    expect_head(lens, 5, NULL);
    for (size_t i = 0; i < 5; i++)
        lens[i] = 4097;
    expect_head(lens, 5, "request head too large");
    /* 32 KiB in all: the first 1 KiB filled to the byte (the two first
     * lines are 25 bytes), three 8 KiB ones, and a last one with room to
     * spare */
    lens[0] = 1024 - 25;
    lens[1] = lens[2] = lens[3] = 8192;
    lens[4] = 32 * 1024 - 1024 - 3 * 8192 - 2;
    expect_head(lens, 5, NULL);
    lens[4]++;
    expect_head(lens, 5, "request head too large");
    /* the empty line that ends the head needs room too: three lines of
     * 5000 bytes take a buffer each, two of 4096 fill the fourth */
    lens[0] = lens[1] = lens[2] = 5000;
    lens[3] = 4096;
    lens[4] = 4094;
    expect_head(lens, 5, NULL);
    lens[4] = 4096;
    expect_head(lens, 5, "request head too large");
}
END_TEST

START_TEST(test_http_skip)
{
    /* each leading CRLF is a message of its own, then the request */
    static const struct sample stream[] = {
        { S("\r\n"), CODEC_INFO_SKIP, false, false },
        { S("\r\n"), CODEC_INFO_SKIP, false, false },
        { S("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, false, false },
        { S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"), 0, false, false },
        { S("\r\n"), CODEC_INFO_SKIP, false, false },
        { S("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_HEAD, false, false },
    };
    check_streams(&codec_http, false, stream, PMX_ARRAY_LEN(stream));

    struct codec_parser p;
    size_t used;
    codec_http.request_begin(&p);
    ck_assert_int_eq(codec_http.parse_request(&p, S("\r\n\r\nGET / HTTP/1.1\r\n"), &used), CODEC_DONE);
    ck_assert_uint_eq(used, 2);
    ck_assert_uint_eq(p.info, CODEC_INFO_SKIP);
}
END_TEST

START_TEST(test_http_flags)
{
    /* until_close: every byte is consumed, however many */
    struct codec_parser p;
    size_t used;

    codec_http.response_begin(&p, 0);
    ck_assert_int_eq(codec_http.parse_response(&p, S("HTTP/1.1 200 OK\r\n\r\nabc"), &used), CODEC_MORE);
    ck_assert_uint_eq(used, 22);
    ck_assert(p.until_close && p.close_after);
    ck_assert_int_eq(codec_http.parse_response(&p, S("HTTP/1.1 200 OK\r\n"), &used), CODEC_MORE);
    ck_assert_uint_eq(used, 17);
    ck_assert_uint_eq(p.size, 39);
    /* interim responses do not count toward close_after */
    codec_http.response_begin(&p, 0);
    ck_assert_int_eq(codec_http.parse_response(&p,
        S("HTTP/1.0 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), &used), CODEC_DONE);
    ck_assert(!p.close_after && !p.until_close);
}
END_TEST

/* Parses a request head (and nothing of its body); returns its info. */
static uint32_t http_head_info(const char *head, int want_rc)
{
    struct codec_parser p;
    size_t used;

    codec_http.request_begin(&p);
    ck_assert_int_eq(codec_http.parse_request(&p, head, strlen(head), &used), want_rc);
    ck_assert_uint_eq(used, strlen(head));
    return p.info;
}

START_TEST(test_http_expect_continue)
{
    /* Set once the head is read and a body is still to come... */
    ck_assert(http_head_info("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
                             CODEC_MORE) & CODEC_INFO_CONTINUE);
    ck_assert(http_head_info("PUT / HTTP/1.1\r\nHost: x\r\nEXPECT:  100-Continue \r\nTransfer-Encoding: chunked\r\n\r\n",
                             CODEC_MORE) & CODEC_INFO_CONTINUE);
    /* ...not before the head ends, */
    ck_assert(!(http_head_info("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n",
                               CODEC_MORE) & CODEC_INFO_CONTINUE));
    /* not without a body, not for HTTP/1.0, not for other expectations */
    ck_assert(!(http_head_info("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
                               CODEC_DONE) & CODEC_INFO_CONTINUE));
    ck_assert(!(http_head_info("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
                               CODEC_MORE) & CODEC_INFO_CONTINUE));
    ck_assert(!(http_head_info("POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 4\r\n\r\n",
                               CODEC_MORE) & CODEC_INFO_CONTINUE));
    expect_reply(&codec_http, CODEC_REPLY_CONTINUE, NULL, 1024, "HTTP/1.1 100 Continue\r\n\r\n");
    expect_reply(&codec_http, CODEC_REPLY_CONTINUE, NULL, 24, "");
}
END_TEST

/* The skip parse_response finds for a response with the request's info,
 * fed whole and one byte at a time. */
static uint64_t http_skip(const char *resp, uint32_t info)
{
    struct codec_parser p;
    size_t used, len = strlen(resp), pos = 0, have = 0;
    int rc = CODEC_MORE;

    codec_http.response_begin(&p, info);
    ck_assert_int_eq(codec_http.parse_response(&p, resp, len, &used), CODEC_DONE);
    ck_assert_uint_eq(used, len);
    uint64_t whole = p.skip;
    codec_http.response_begin(&p, info);
    while (rc == CODEC_MORE && have < len) {
        have++;
        rc = codec_http.parse_response(&p, resp + pos, have - pos, &used);
        pos += used;
    }
    ck_assert_int_eq(rc, CODEC_DONE);
    ck_assert_uint_eq(pos, len);
    ck_assert_uint_eq(p.skip, whole);
    return whole;
}

START_TEST(test_http_continue_skip)
{
    static const char c100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    static const char c100x[] = "HTTP/1.1 100 Continue\r\nX-A: b\r\n\r\n";
    static const char e103[] = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    char r[512];
    /* Proximux answered 100 (EXPECT, CONTINUE cleared): the upstream's
     * 100s at the front are skipped... */
    snprintf(r, sizeof(r), "%s%s%s", c100, c100x, ok);
    ck_assert_uint_eq(http_skip(r, HTTP_EXPECT), strlen(c100) + strlen(c100x));
    ck_assert_uint_eq(http_skip(ok, HTTP_EXPECT), 0);
    /* ...up to anything else: a 103 is passed on, and what follows it */
    snprintf(r, sizeof(r), "%s%s%s%s", c100, e103, c100, ok);
    ck_assert_uint_eq(http_skip(r, HTTP_EXPECT), strlen(c100));
    snprintf(r, sizeof(r), "%s%s%s", e103, c100, ok);
    ck_assert_uint_eq(http_skip(r, HTTP_EXPECT), 0);
    /* not answered here (CONTINUE still set), or no Expect: passed on */
    snprintf(r, sizeof(r), "%s%s", c100, ok);
    ck_assert_uint_eq(http_skip(r, HTTP_EXPECT | CODEC_INFO_CONTINUE), 0);
    ck_assert_uint_eq(http_skip(r, 0), 0);
    /* the request head sets EXPECT with CONTINUE */
    ck_assert_uint_eq(http_head_info("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
                                     CODEC_MORE) & HTTP_EXPECT, HTTP_EXPECT);
}
END_TEST

/* Checks an HTTP reply: status line, headers, Content-Length matching the
 * body, and the body. */
static void expect_http_reply(enum codec_reply kind, const char *reason, size_t cap,
                              const char *status, bool close, const char *body)
{
    char want[1024];

    snprintf(want, sizeof(want),
             "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
             status, strlen(body), close ? "Connection: close\r\n" : "", body);
    expect_reply(&codec_http, kind, reason, cap, want);
}

START_TEST(test_http_reply)
{
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "bad request line", 1024, "400 Bad Request", true,
                      "proximux: bad request line\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 1024, "502 Bad Gateway", false,
                      "proximux: upstream closed\n");
    expect_http_reply(CODEC_REPLY_TIMEOUT, "timed out", 1024, "504 Gateway Timeout", false,
                      "proximux: timed out\n");
    expect_http_reply(CODEC_REPLY_BUSY, "queue full", 1024, "503 Service Unavailable", false,
                      "proximux: queue full\n");
    expect_http_reply(CODEC_REPLY_BUSY, "a\r\nb", 1024, "503 Service Unavailable", false,
                      "proximux: ab\n");
    expect_reply(&codec_http, CODEC_REPLY_QUIT, "bye", 1024, "");
    /* a refused request gets nginx's status for it, and is closed */
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "malformed request (transfer-coding not implemented)", 1024,
                      "501 Not Implemented", true, "proximux: malformed request (transfer-coding not implemented)\n");
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "malformed request (request line too long)", 1024,
                      "414 URI Too Long", true, "proximux: malformed request (request line too long)\n");
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "header line too long", 1024,
                      "431 Request Header Fields Too Large", true, "proximux: header line too long\n");
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "too many header fields", 1024,
                      "431 Request Header Fields Too Large", true, "proximux: too many header fields\n");
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "request head too large", 1024,
                      "431 Request Header Fields Too Large", true, "proximux: request head too large\n");
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "malformed request (bare CR)", 1024,
                      "400 Bad Request", true, "proximux: malformed request (bare CR)\n");
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "request larger than max_message", 1024,
                      "400 Bad Request", true, "proximux: request larger than max_message\n");
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, NULL, 1024, "400 Bad Request", true, "proximux: error\n");
    expect_reply(&codec_http, CODEC_REPLY_SERVER_ERROR, "upstream closed", 1024,
                 "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\n"
                 "proximux: upstream closed\n");
    /* truncation: the 502 head is 74 bytes (2-digit length), its body 11 + reason */
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11 + 15, "502 Bad Gateway", false,
                      "proximux: upstream closed\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11 + 14, "502 Bad Gateway", false,
                      "proximux: upstream close\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11 + 5, "502 Bad Gateway", false,
                      "proximux: upstr\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11, "502 Bad Gateway", false,
                      "proximux: \n");
    expect_reply(&codec_http, CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 10, "");
    expect_reply(&codec_http, CODEC_REPLY_CLIENT_ERROR, "x", 10, "");
}
END_TEST

Suite *codec_http_suite(void)
{
    Suite *s = suite_create("codec_http");
    TCase *tc = tcase_create("basic");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_http_requests);
    tcase_add_test(tc, test_http_responses);
    tcase_add_test(tc, test_http_bad);
    tcase_add_test(tc, test_http_skip);
    tcase_add_test(tc, test_http_flags);
    tcase_add_test(tc, test_http_expect_continue);
    tcase_add_test(tc, test_http_continue_skip);
    tcase_add_test(tc, test_http_reply);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_http_big);
    tcase_add_test(big, test_http_limits);
    suite_add_tcase(s, big);
    return s;
}
