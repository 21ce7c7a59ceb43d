/* resp codec tests: RESP requests and replies split at every byte,
 * malformed and oversized input, refused commands, reply bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "suites.h"

/* -------------------------------------------------------------------- resp */

/* The request info codec_resp.c sets: its enum resp_class in the private
 * bits (same values), with CODEC_INFO_QUIT or CODEC_INFO_UNSUPPORTED. */
#define R_QUIT    (CODEC_INFO_QUIT | CODEC_INFO_PRIVATE(1))
#define R_TRANS   (CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(2))
#define R_PUBSUB  (CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(3))
#define R_BLOCK   (CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(4))
#define R_STATE   (CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(5))
#define R_FLOW    (CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(6))
#define R_CLOSES  (CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(7))
#define R_BADNAME (CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(8))
/* response info: push messages may come (RESP_INFO_PUSH_OK) */
#define R_PUSH    CODEC_INFO_PRIVATE(0x10)
#define R_SKIP    CODEC_INFO_SKIP

/* 40 bytes: a long argument that streams through the parser */
#define LONG40 "0123456789012345678901234567890123456789"

static const struct sample resp_requests[] = {
    { S("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), 0, false, false },
    { S("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"), 0, false, false },
    { S("PING\r\n"), 0, false, false },
    { S("ping\n"), 0, false, false },
    { S("\r\n"), R_SKIP, false, false },
    { S("\n"), R_SKIP, false, false },
    { S("   \t \r\n"), R_SKIP, false, false },
    { S("*0\r\n"), R_SKIP, false, false },
    { S("*-1\r\n"), R_SKIP, false, false },
    { S("*1\r\n$4\r\nQUIT\r\n"), R_QUIT, false, false },
    { S("quit\r\n"), R_QUIT, false, false },
    { S("'quit'\r\n"), R_QUIT, false, false },
    { S("*1\r\n$5\r\nQUITX\r\n"), 0, false, false },
    { S("*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n"), R_PUBSUB, false, false },
    { S("*1\r\n$5\r\nmulti\r\n"), R_TRANS, false, false },
    { S("*1\r\n$4\r\nExEc\r\n"), R_TRANS, false, false },
    { S("*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n"), R_STATE, false, false },
    { S("*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n"), R_BLOCK, false, false },
    { S("*2\r\n$12\r\npunsubscribe\r\n$1\r\nx\r\n"), R_PUBSUB, false, false },
    { S("*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n"), R_STATE, false, false },
    { S("*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"), R_STATE, false, false },
    { S("HELLO 3\r\n"), R_STATE, false, false },
    { S("  subscribe news\r\n"), R_PUBSUB, false, false },
    { S("\t\"MONITOR\"\r\n"), R_FLOW, false, false },
    { S("\"\\x71uit\"\r\n"), R_QUIT, false, false },
    { S("set foo \"bar \\\"baz\\\" \\x41\"\n"), 0, false, false },
    { S("set 'it\\'s' x\r\n"), 0, false, false },
    { S("*1\r\n$0\r\n\r\n"), 0, false, false },
    { S("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), 0, false, false },
    /* a bulk holding protocol bytes */
    { S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\na\r\n*1\r\n$\r\n"), 0, false, false },
    /* a first argument longer than 32 bytes is no command of the table */
    { S("*2\r\n$33\r\nsubscribesubscribesubscribesubscr\r\n$1\r\nx\r\n"), 0, false, false },
    { S("*1\r\n$32\r\nsubscribesubscribesubscribesubsc\r\n"), 0, false, false },
    /* binary values in arguments other than the name are fine */
    { S("*3\r\n$3\r\nSET\r\n$2\r\nk\0\r\n$3\r\n\0\r\n\r\n"), 0, false, false },
    { S("set k \"\\x00\\r\\n\"\r\n"), 0, false, false },

    /* a name with a byte outside 0x21..0x7e: Redis compares names with
     * strcasecmp, which stops at a NUL (the audit's bytes) */
    { S("*1\r\n$12\r\nMULTI\0" "a1b2c3\r\n"), R_BADNAME, false, false },
    { S("*2\r\n$13\r\nSELECT\0" "abcdef\r\n$1\r\n9\r\n"), R_BADNAME, false, false },
    { S("*2\r\n$10\r\nSUBSCRIBE\0\r\n$1\r\nx\r\n"), R_BADNAME, false, false },
    { S("*1\r\n$8\r\nMONITOR\0\r\n"), R_BADNAME, false, false },
    { S("*1\r\n$5\r\nQUIT\0\r\n"), R_BADNAME, false, false },
    { S("*1\r\n$6\r\nMULTI \r\n"), R_BADNAME, false, false },
    { S("*1\r\n$6\r\n\tMULTI\r\n"), R_BADNAME, false, false },
    { S("*1\r\n$6\r\nMULTI\x7f\r\n"), R_BADNAME, false, false },
    { S("*1\r\n$6\r\nMULTI\xff\r\n"), R_BADNAME, false, false },
    { S("*2\r\n$3\r\nG\x80T\r\n$1\r\nk\r\n"), R_BADNAME, false, false },
    { S("*1\r\n$4\r\nPING\r\n"), 0, false, false },
    /* long names are checked as they stream */
    { S("*1\r\n$40\r\nMULTI\0" "4567890123456789012345678901234567\r\n"), R_BADNAME, false, false },
    { S("*1\r\n$40\r\n012345678901234567890123456789012345678\x80\r\n"), R_BADNAME, false, false },
    { S("*2\r\n$40\r\n" LONG40 "\r\n$1\r\nx\r\n"), 0, false, false },
    /* inline: the decoded first argument is the name */
    { S("\"MULTI\\x00x\"\r\n"), R_BADNAME, false, false },
    { S("'MULTI x'\r\n"), R_BADNAME, false, false },
    { S("\"SELECT\\n\" 9\r\n"), R_BADNAME, false, false },
    { S("G\xc3\xa9T k\r\n"), R_BADNAME, false, false },

    /* CLIENT REPLY OFF/SKIP would leave requests unanswered */
    { S("*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n"), R_STATE, false, false },
    { S("CLIENT REPLY OFF\r\n"), R_STATE, false, false },
    { S("client reply skip\n"), R_STATE, false, false },
    /* Redis closes the connection on these, without a reply */
    { S("POST / HTTP/1.1\r\n"), R_CLOSES, false, false },
    { S("Host: example.com\r\n"), R_CLOSES, false, false },
    { S("*1\r\n$5\r\nHOST:\r\n"), R_CLOSES, false, false },
    { S("*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n"), R_CLOSES, false, false },
    { S("DEBUG SLEEP 0\r\n"), R_CLOSES, false, false },
    /* CONFIG and ACL: only their read-only subcommands are ordinary */
    { S("*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n"), 0, false, false },
    { S("config Get appendonly\r\n"), 0, false, false },
    { S("CONFIG \"get\" x\r\n"), 0, false, false },
    { S("*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$7\r\ntimeout\r\n$1\r\n1\r\n"), R_CLOSES, false, false },
    { S("*3\r\n$6\r\nCONFIG\r\n$4\r\nGET\0\r\n$4\r\nsave\r\n"), R_CLOSES, false, false },
    { S("*3\r\n$6\r\nCONFIG\r\n$40\r\n" LONG40 "\r\n$4\r\nsave\r\n"), R_CLOSES, false, false },
    { S("*3\r\n$6\r\nCONFIG\r\n$7\r\nGETSAVE\r\n$4\r\nsave\r\n"), R_CLOSES, false, false },
    { S("*1\r\n$6\r\nCONFIG\r\n"), R_CLOSES, false, false },
    { S("CONFIG\r\n"), R_CLOSES, false, false },
    { S("CONFIG RESETSTAT\r\n"), R_CLOSES, false, false },
    { S("ACL WHOAMI\r\n"), 0, false, false },
    { S("*2\r\n$3\r\nacl\r\n$3\r\nCAT\r\n"), 0, false, false },
    { S("ACL DELUSER proximux\r\n"), R_CLOSES, false, false },
    { S("*2\r\n$3\r\nACL\r\n$4\r\nLOAD\r\n"), R_CLOSES, false, false },
    { S("ACL SETUSER u on\r\n"), R_CLOSES, false, false },
    /* a subcommand name given as the command is unknown to Redis */
    { S("config|set\r\n"), 0, false, false },
};

/* XREAD and XREADGROUP block only with a BLOCK option before STREAMS. */
static const struct sample resp_xread[] = {
    { S("*6\r\n$5\r\nXREAD\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n$\r\n"), R_BLOCK, false, false },
    { S("*8\r\n$5\r\nxread\r\n$5\r\nCOUNT\r\n$2\r\n10\r\n$5\r\nbLoCk\r\n$3\r\n100\r\n$7\r\nstreams\r\n$1\r\ns\r\n$1\r\n0\r\n"), R_BLOCK, false, false },
    { S("xread block 0 streams s $\r\n"), R_BLOCK, false, false },
    { S("XREAD COUNT 1 Block 5 STREAMS a b 0 0\r\n"), R_BLOCK, false, false },
    { S("\"XREAD\" \"BLOCK\" 0 STREAMS s $\r\n"), R_BLOCK, false, false },
    { S("*9\r\n$10\r\nXREADGROUP\r\n$5\r\nGROUP\r\n$1\r\ng\r\n$1\r\nc\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n>\r\n"), R_BLOCK, false, false },
    { S("XReadGroup GROUP g c COUNT 1 NOACK BLOCK 5 STREAMS s >\r\n"), R_BLOCK, false, false },
    /* a group called "streams" is skipped as Redis skips it */
    { S("*9\r\n$10\r\nxreadgroup\r\n$5\r\ngroup\r\n$7\r\nstreams\r\n$1\r\nc\r\n$5\r\nblock\r\n$1\r\n0\r\n$7\r\nstreams\r\n$1\r\ns\r\n$1\r\n>\r\n"), R_BLOCK, false, false },
    /* an option with a NUL may be BLOCK to strcasecmp, short or long */
    { S("*6\r\n$5\r\nXREAD\r\n$6\r\nBLOCK\0\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n$\r\n"), R_BLOCK, false, false },
    { S("*6\r\n$5\r\nXREAD\r\n$40\r\nBLOCK\0" "6789012345678901234567890123456789\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n$\r\n"), R_BLOCK, false, false },
    { S("XREAD \"BLOCK\\x00\" 0 STREAMS s $\r\n"), R_BLOCK, false, false },
    /* long arguments before BLOCK: an unknown option, a COUNT value */
    { S("*7\r\n$5\r\nXREAD\r\n$40\r\n" LONG40 "\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n$\r\n"), R_BLOCK, false, false },
    { S("*8\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$40\r\n" LONG40 "\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n$\r\n"), R_BLOCK, false, false },
    { S("XREAD COUNT " LONG40 " BLOCK 0 STREAMS s $\r\n"), R_BLOCK, false, false },

    /* not blocking */
    { S("*4\r\n$5\r\nXREAD\r\n$7\r\nSTREAMS\r\n$5\r\nblock\r\n$1\r\n0\r\n"), 0, false, false },
    { S("XREAD STREAMS block 0\r\n"), 0, false, false },
    { S("XREAD COUNT 1 STREAMS block $\r\n"), 0, false, false },
    { S("XREAD STREAMS block BLOCK 0 0\r\n"), 0, false, false },
    { S("*6\r\n$5\r\nXREAD\r\n$7\r\nSTREAMS\r\n$5\r\nBLOCK\r\n$5\r\nblock\r\n$1\r\n0\r\n$1\r\n0\r\n"), 0, false, false },
    { S("XREADGROUP GROUP block block STREAMS s >\r\n"), 0, false, false },
    { S("*7\r\n$10\r\nXREADGROUP\r\n$5\r\nGROUP\r\n$5\r\nblock\r\n$5\r\nBLOCK\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n>\r\n"), 0, false, false },
    { S("XREAD COUNT block STREAMS s $\r\n"), 0, false, false },
    { S("*4\r\n$5\r\nXREAD\r\n$7\r\nSTREAMS\r\n$2\r\nk\0\r\n$1\r\n$\r\n"), 0, false, false },
    { S("*4\r\n$5\r\nXREAD\r\n$7\r\nSTREAMS\r\n$40\r\nblock\0" "6789012345678901234567890123456789\r\n$1\r\n$\r\n"), 0, false, false },
    /* BLOCK with nothing after it is a syntax error in Redis */
    { S("XREAD BLOCK\r\n"), 0, false, false },
    { S("*1\r\n$5\r\nXREAD\r\n"), 0, false, false },
    { S("XREADGROUP\r\n"), 0, false, false },
    { S("*2\r\n$6\r\nXREADX\r\n$5\r\nBLOCK\r\n"), 0, false, false },
};

static const struct sample resp_responses[] = {
    { S("+OK\r\n"), 0, false, false },
    { S("+PONG\r\n"), 0, false, false },
    { S("-ERR unknown command 'foo', with args beginning with: \r\n"), 0, false, false },
    { S(":1000\r\n"), 0, false, false },
    { S(":-1\r\n"), 0, false, false },
    { S("$5\r\nhello\r\n"), 0, false, false },
    { S("$0\r\n\r\n"), 0, false, false },
    { S("$-1\r\n"), 0, false, false },
    { S("*-1\r\n"), 0, false, false },
    { S("*0\r\n"), 0, false, false },
    { S("$8\r\n\r\n*1\r\n:1\r\n"), 0, false, false },
    { S("*2\r\n$3\r\nfoo\r\n$-1\r\n"), 0, false, false },
    /* SCAN */
    { S("*2\r\n$2\r\n17\r\n*3\r\n$4\r\nkey1\r\n$4\r\nkey2\r\n$4\r\nkey3\r\n"), 0, false, false },
    { S("*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n*0\r\n*-1\r\n"), 0, false, false },
    { S("*4\r\n+OK\r\n:5\r\n$-1\r\n-ERR x\r\n"), 0, false, false },
    /* 17 arrays deep: one more than the old limit */
    { S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*2\r\n:1\r\n:2\r\n"), 0, false, false },
    { S("*2\r\n*1\r\n*1\r\n*0\r\n*1\r\n*1\r\n*-1\r\n"), 0, false, false },
    /* XREAD */
    { S("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"), 0, false, false },
    /* the info of any request */
    { S("+OK\r\n"), R_BLOCK, false, false },

    /* RESP3 */
    { S("_\r\n"), 0, false, false },
    { S(",3.14\r\n"), 0, false, false },
    { S(",-inf\r\n"), 0, false, false },
    { S("#t\r\n"), 0, false, false },
    { S("#f\r\n"), 0, false, false },
    { S("(3492890328409238509324850943850943825024385\r\n"), 0, false, false },
    { S("=15\r\ntxt:Some string\r\n"), 0, false, false },
    { S("=6\r\ntxt:\r\n\r\n"), 0, false, false },
    { S("!21\r\nSYNTAX invalid syntax\r\n"), 0, false, false },
    { S("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"), 0, false, false },
    { S("%0\r\n"), 0, false, false },
    { S("%-1\r\n"), 0, false, false },
    { S("%1\r\n+k\r\n%1\r\n$2\r\nk2\r\n*2\r\n:1\r\n_\r\n"), 0, false, false },
    { S("%1\r\n*2\r\n:1\r\n:2\r\n~1\r\n#t\r\n"), 0, false, false },
    { S("~3\r\n+a\r\n+b\r\n+c\r\n"), 0, false, false },
    { S("~0\r\n"), 0, false, false },
    /* push messages: only where the exchange says they may come (a
     * dedicated connection) */
    { S(">3\r\n$7\r\nmessage\r\n$7\r\nchannel\r\n$5\r\nhello\r\n"), R_PUSH, false, false },
    { S(">4\r\n+pmessage\r\n+p*\r\n+pa\r\n*0\r\n"), R_PUSH, false, false },
    { S("*1\r\n>1\r\n+x\r\n"), 0, false, false },
    /* an attribute, then the value it describes (the RESP3 spec's example) */
    { S("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n"), 0, false, false },
    { S("|0\r\n:1\r\n"), 0, false, false },
    { S("|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n$-1\r\n"), 0, false, false },
    { S("*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n|1\r\n+a\r\n*0\r\n:2\r\n"), 0, false, false },
    { S("|1\r\n|1\r\n+x\r\n+y\r\n+a\r\n+b\r\n_\r\n"), 0, false, false },
};
static const struct bad resp_bad_requests[] = {
    { S("*2\r\n$3\r\nGET\r\n:3\r\nkey\r\n"), 0, "expected '$'" },
    { S("*x\r\n"), 0, "multibulk length" },
    { S("*01\r\n$4\r\nPING\r\n"), 0, "multibulk length" },
    { S("*-2\r\n"), 0, "multibulk length" },
    { S("*\r\n"), 0, "multibulk length" },
    { S("*1\n$4\r\nPING\r\n"), 0, "multibulk length" },
    { S("*1\r\n$abc\r\n"), 0, "bulk length" },
    { S("*1\r\n$-1\r\n"), 0, "bulk length" },
    { S("*1\r\n$ 4\r\nPING\r\n"), 0, "bulk length" },
    { S("*1\r\n$4\r\nPINGXX"), 0, "terminator" },
    { S("*1\r\n$4\r\nPING\n\n"), 0, "terminator" },
    { S("*2\r\n$3\r\nGET\r\n$40\r\n0123456789012345678901234567890123456789\n\r"), 0, "terminator" },
    { S("set a \"b\r\n"), 0, "unbalanced" },
    { S("set a \"b\"c\r\n"), 0, "unbalanced" },
    { S("set a 'b\r\n"), 0, "unbalanced" },
    /* oversized */
    { S("*1048577\r\n"), 0, "multibulk length" },
    { S("*99999999999999999999\r\n"), 0, "multibulk length" },
    { S("*1\r\n$536870913\r\n"), 0, "bulk length" },
    /* inline lines with a control byte: Redis finds the end of the line
     * with strchr (a NUL hides it) and splits at other bytes (the audit's
     * bytes first) */
    { S("PING\0\r\n"), 0, "control byte" },
    { S("\0PING\r\n"), 0, "control byte" },
    { S("\0\r\n"), 0, "control byte" },
    { S("PING\r\0\n"), 0, "control byte" },
    { S("PI\rNG\r\n"), 0, "control byte" },
    { S("PING\r\r\n"), 0, "control byte" },
    { S("\rPING\n"), 0, "control byte" },
    { S("GET a\x0b" "b\r\n"), 0, "control byte" },
    { S("GET a\x0c\r\n"), 0, "control byte" },
    { S("SET k v\x7f\r\n"), 0, "control byte" },
    { S("\x1b[A\r\n"), 0, "control byte" },
    { S("MULTI\x01\r\n"), 0, "control byte" },
    { S("set k \"a\0b\"\r\n"), 0, "control byte" },
};

static const struct bad resp_bad_responses[] = {
    { S("?x\r\n"), 0, "unknown reply type" },
    { S(".\r\n"), 0, "unknown reply type" },
    { S(";4\r\nabcd\r\n"), 0, "unknown reply type" },
    { S("$abc\r\n"), 0, "bulk length" },
    { S("$-2\r\n"), 0, "bulk length" },
    { S("$3\r\nabcd\r\n"), 0, "terminator" },
    { S("*-2\r\n"), 0, "aggregate length" },
    { S("*2\r\n:1\r\n?"), 0, "unknown reply type" },
    { S("*2147483648\r\n"), 0, "aggregate length" },
    { S("$536870913\r\n"), 0, "bulk length" },
    /* RESP3 */
    { S("=-1\r\n"), 0, "bulk length" },
    { S("!-1\r\n"), 0, "bulk length" },
    { S("=3\r\nabcd\r\n"), 0, "terminator" },
    { S("!536870913\r\n"), 0, "bulk length" },
    { S("%-2\r\n"), 0, "aggregate length" },
    { S("%2147483648\r\n"), 0, "aggregate length" },
    { S("~x\r\n"), 0, "aggregate length" },
    { S(">-2\r\n"), R_PUSH, "aggregate length" },
    /* a push message where a reply is due, on a shared connection (client
     * tracking invalidation): nobody asked for it */
    { S(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"), 0, "unexpected push" },
    { S(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"), R_BLOCK, "unexpected push" },
    { S("|-1\r\n"), 0, "aggregate length" },
    { S("|1\r\n+a\r\n+b\r\n?"), 0, "unknown reply type" },
    /* streamed strings and aggregates, which Redis does not send */
    { S("$?\r\n;4\r\nabcd\r\n;0\r\n"), 0, "bulk length" },
    { S("*?\r\n:1\r\n.\r\n"), 0, "aggregate length" },
};

START_TEST(test_resp_requests)
{
    check_samples(&codec_resp, false, resp_requests, PMX_ARRAY_LEN(resp_requests));
    check_streams(&codec_resp, false, resp_requests, PMX_ARRAY_LEN(resp_requests));
}
END_TEST

START_TEST(test_resp_responses)
{
    check_samples(&codec_resp, true, resp_responses, PMX_ARRAY_LEN(resp_responses));
    check_streams(&codec_resp, true, resp_responses, PMX_ARRAY_LEN(resp_responses));
}
END_TEST

START_TEST(test_resp_xread)
{
    check_samples(&codec_resp, false, resp_xread, PMX_ARRAY_LEN(resp_xread));
    check_streams(&codec_resp, false, resp_xread, PMX_ARRAY_LEN(resp_xread));
}
END_TEST

/* Every command of codec_resp.c's table with its class (the table is
 * bisected: each entry must be found), and some that are not in it. */
static const struct {
    const char *name;
    uint32_t info;
} resp_table[] = {
    { "acl", R_CLOSES }, { "auth", R_STATE }, { "exec", R_TRANS }, { "post", R_CLOSES },
    { "quit", R_QUIT }, { "sync", R_FLOW }, { "wait", R_BLOCK }, { "blpop", R_BLOCK },
    { "brpop", R_BLOCK }, { "debug", R_CLOSES }, { "hello", R_STATE }, { "host:", R_CLOSES },
    { "multi", R_TRANS }, { "psync", R_FLOW }, { "reset", R_STATE }, { "watch", R_TRANS },
    { "xread", 0 }, { "asking", R_STATE }, { "blmove", R_BLOCK }, { "blmpop", R_BLOCK },
    { "bzmpop", R_BLOCK }, { "client", R_STATE }, { "config", R_CLOSES }, { "select", R_STATE },
    { "discard", R_TRANS }, { "monitor", R_FLOW }, { "unwatch", R_TRANS }, { "waitaof", R_BLOCK },
    { "bzpopmax", R_BLOCK }, { "bzpopmin", R_BLOCK }, { "failover", R_CLOSES },
    { "readonly", R_STATE }, { "replconf", R_FLOW }, { "shutdown", R_CLOSES },
    { "readwrite", R_STATE }, { "subscribe", R_PUBSUB }, { "brpoplpush", R_BLOCK },
    { "psubscribe", R_PUBSUB }, { "ssubscribe", R_PUBSUB }, { "xreadgroup", 0 },
    { "unsubscribe", R_PUBSUB }, { "punsubscribe", R_PUBSUB }, { "sunsubscribe", R_PUBSUB },
    { "acl|cat", 0 }, { "acl|log", 0 }, { "acl|help", 0 }, { "acl|list", 0 }, { "acl|users", 0 },
    { "acl|dryrun", 0 }, { "acl|whoami", 0 }, { "config|get", 0 }, { "acl|genpass", 0 },
    { "acl|getuser", 0 }, { "config|help", 0 },
    { "acl|setuser", R_CLOSES }, { "acl|deluser", R_CLOSES }, { "acl|load", R_CLOSES },
    { "acl|save", R_CLOSES }, { "config|set", R_CLOSES }, { "config|rewrite", R_CLOSES },
    { "acl|", R_CLOSES }, { "acl|x", R_CLOSES },
    /* ordinary */
    { "get", 0 }, { "set", 0 }, { "del", 0 }, { "incr", 0 }, { "hget", 0 }, { "mget", 0 },
    { "lpush", 0 }, { "expire", 0 }, { "publish", 0 }, { "eval", 0 }, { "xadd", 0 },
    { "xrange", 0 }, { "pubsub", 0 }, { "replicaof", 0 }, { "a", 0 }, { "zz", 0 },
    { "zzzzzzzzzzzz", 0 }, { "aaaaaaaaaaaa", 0 }, { "zzzzzzzzzzzzz", 0 },
};

/* s[0..n) in upper case (up) or with its first byte left as is. */
static void resp_case(char *out, const char *s, size_t n, bool up)
{
    for (size_t k = 0; k < n; k++)
        out[k] = (s[k] >= 'a' && s[k] <= 'z' && (up || k > 0)) ? (char)(s[k] - 0x20) : s[k];
}

static void resp_check_one(const char *data, int len, uint32_t info, int idx)
{
    struct sample s = { data, (size_t)len, info, false, false };

    check_sample(&codec_resp, false, &s, idx);
}

START_TEST(test_resp_table)
{
    char buf[128], up[64], mixed[64];

    for (size_t i = 0; i < PMX_ARRAY_LEN(resp_table); i++) {
        const char *name = resp_table[i].name, *bar = strchr(name, '|');
        size_t n = strlen(name);
        uint32_t info = resp_table[i].info;
        int idx = (int)i, len;
        resp_case(up, name, n, true);
        resp_case(mixed, name, n, false);
        if (bar == NULL) {
            /* multibulk in upper case, inline in mixed case */
            len = snprintf(buf, sizeof(buf), "*1\r\n$%zu\r\n%.*s\r\n", n, (int)n, up);
            resp_check_one(buf, len, info, idx);
            len = snprintf(buf, sizeof(buf), "%.*s\r\n", (int)n, mixed);
            resp_check_one(buf, len, info, idx);
            /* one more byte: another command, or a name Redis may mistake */
            len = snprintf(buf, sizeof(buf), "*1\r\n$%zu\r\n%.*sx\r\n", n + 1, (int)n, up);
            resp_check_one(buf, len, 0, idx);
            len = snprintf(buf, sizeof(buf), "*1\r\n$%zu\r\n%.*s#\r\n", n + 1, (int)n, up);
            buf[len - 3] = '\0';
            resp_check_one(buf, len, R_BADNAME, idx);
            continue;
        }
        /* "cmd|sub": the subcommand of a command whose class is R_CLOSES */
        size_t c = (size_t)(bar - name), sn = n - c - 1;
        len = snprintf(buf, sizeof(buf), "*2\r\n$%zu\r\n%.*s\r\n$%zu\r\n%.*s\r\n", c, (int)c, up, sn,
                       (int)sn, up + c + 1);
        resp_check_one(buf, len, info, idx);
        len = snprintf(buf, sizeof(buf), "%.*s %.*s\r\n", (int)c, mixed, (int)sn, mixed + c + 1);
        resp_check_one(buf, len, sn > 0 ? info : R_CLOSES, idx);
        len = snprintf(buf, sizeof(buf), "*2\r\n$%zu\r\n%.*s\r\n$%zu\r\n%.*sx\r\n", c, (int)c, up, sn + 1,
                       (int)sn, up + c + 1);
        resp_check_one(buf, len, R_CLOSES, idx);
        len = snprintf(buf, sizeof(buf), "*2\r\n$%zu\r\n%.*s\r\n$%zu\r\n%.*s#\r\n", c, (int)c, up, sn + 1,
                       (int)sn, up + c + 1);
        buf[len - 3] = '\0';
        resp_check_one(buf, len, R_CLOSES, idx);
    }
}
END_TEST

/* A reply of n elements: "*<n>" then n times elem. */
static char *resp_many(size_t n, const char *elem, size_t *len)
{
    char head[32];
    size_t h = (size_t)snprintf(head, sizeof(head), "*%zu\r\n", n), e = strlen(elem);
    char *m = malloc(h + n * e);

    ck_assert_ptr_nonnull(m);
    memcpy(m, head, h);
    for (size_t i = 0; i < n; i++)
        memcpy(m + h + i * e, elem, e);
    *len = h + n * e;
    return m;
}

/* A reply nested depth arrays deep around :1. */
static char *resp_deep(size_t depth, size_t *len)
{
    char *m = make_big("", depth * 4 + 4, ' ', "", len);

    for (size_t i = 0; i < depth; i++)
        memcpy(m + i * 4, "*1\r\n", 4);
    memcpy(m + depth * 4, ":1\r\n", 4);
    return m;
}

/* Some ways of feeding a big message: whole, split once, in steps. */
static void resp_drive_some(bool response, const char *m, size_t len, uint32_t info)
{
    const size_t firsts[] = { len, 1, 2, 3, 4, 5, 7, len / 2, len - 1, 4096 };
    const size_t steps[] = { len, len, len, len, len, len, len, len, len, 4093 };

    for (size_t i = 0; i < PMX_ARRAY_LEN(firsts); i++) {
        struct outcome o = drive(&codec_resp, response, info, m, len, firsts[i], steps[i]);
        REQUIRE(o.rc == CODEC_DONE && o.used == len && o.left == 0,
                "first %zu step %zu: rc %d used %llu of %zu (%s)", firsts[i], steps[i], o.rc,
                (unsigned long long)o.used, len, o.error ? o.error : "");
    }
}

START_TEST(test_resp_deep)
{
    /* EVAL "return {{{...}}}" 0: 100 levels, every split, back to back */
    size_t len;
    char *m = resp_deep(100, &len);
    struct sample s[3] = {
        { m, len, 0, false, false },
        { S("*2\r\n*1\r\n:1\r\n*0\r\n"), 0, false, false },
        { m, len, R_BLOCK, false, false },
    };
    check_samples(&codec_resp, true, s, PMX_ARRAY_LEN(s));
    check_streams(&codec_resp, true, s, PMX_ARRAY_LEN(s));
    /* the same, one value short, does not end */
    expect_whole(&codec_resp, true, 0, m, len - 4, CODEC_MORE, len - 4);
    free(m);

    /* no depth limit at all */
    m = resp_deep(100000, &len);
    resp_drive_some(true, m, len, 0);
    free(m);
}
END_TEST

START_TEST(test_resp_many)
{
    /* 10^6 elements (LRANGE, KEYS), and 10^5 maps of a pair */
    size_t len;
    char *m = resp_many(1000000, ":1\r\n", &len);
    resp_drive_some(true, m, len, 0);
    expect_whole(&codec_resp, true, 0, m, len - 1, CODEC_MORE, len - 1);
    struct outcome o = drive(&codec_resp, true, 0, m, len, 7, 13);
    ck_assert(o.rc == CODEC_DONE && o.used == len);
    free(m);
    m = resp_many(100000, "%1\r\n$1\r\nk\r\n*2\r\n_\r\n#t\r\n", &len);
    resp_drive_some(true, m, len, 0);
    free(m);
}
END_TEST

START_TEST(test_resp_big)
{
    /* redis-cli SET with a 1 MiB value, and the GET that reads it back */
    size_t len;
    char *set = make_big("*3\r\n$3\r\nSET\r\n$9\r\nbig:value\r\n$1048576\r\n", 1048576, '\r', "\r\n", &len);
    struct sample s = { set, len, 0, false, false };
    check_sample(&codec_resp, false, &s, 0);
    char *get = make_big("$1048576\r\n", 1048576, '\n', "\r\n", &len);
    struct sample r = { get, len, 0, false, false };
    check_sample(&codec_resp, true, &r, 0);
    free(get);
    free(set);
}
END_TEST

START_TEST(test_resp_bad)
{
    check_bad(&codec_resp, false, resp_bad_requests, PMX_ARRAY_LEN(resp_bad_requests));
    check_bad(&codec_resp, true, resp_bad_responses, PMX_ARRAY_LEN(resp_bad_responses));

    /* the limits themselves are accepted */
    expect_whole(&codec_resp, false, 0, S("*1048576\r\n"), CODEC_MORE, 10);
    expect_whole(&codec_resp, false, 0, S("*1\r\n$536870912\r\nab"), CODEC_MORE, 18);
    expect_whole(&codec_resp, true, 0, S("$536870912\r\n"), CODEC_MORE, 12);
    expect_whole(&codec_resp, true, 0, S("*2147483647\r\n"), CODEC_MORE, 13);

    /* an inline line longer than 64 KiB, complete or not */
    size_t len;
    char *m = make_big("", 64 * 1024 + 2, 'a', "", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_ERROR, 0);
    expect_whole(&codec_resp, false, 0, m, 64 * 1024 + 1, CODEC_MORE, 0);
    free(m);
    m = make_big("", 64 * 1024 + 1, 'a', "\r\n", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    m = make_big("", 64 * 1024, 'a', "\r\n", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_DONE, len);
    free(m);
    /* a length line that never ends */
    m = make_big("*1\r\n$", 70000, '1', "", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_ERROR, 0);
    expect_whole(&codec_resp, true, 0, m + 4, len - 4, CODEC_ERROR, 0);
    free(m);
    /* a simple reply line passes as it arrives */
    expect_whole(&codec_resp, true, 0, S("+OK but long"), CODEC_MORE, 12);
    /* the short first argument is not consumed until whole */
    expect_whole(&codec_resp, false, 0, S("*2\r\n$9\r\nSUBSCR"), CODEC_MORE, 8);
    expect_whole(&codec_resp, false, 0, S("*2\r\n$40\r\nSUBSCR"), CODEC_MORE, 15);
    /* nor is an XREAD option; an option's value, a long option and the
     * arguments after STREAMS stream */
    expect_whole(&codec_resp, false, 0, S("*4\r\n$5\r\nXREAD\r\n$5\r\nBLO"), CODEC_MORE, 19);
    expect_whole(&codec_resp, false, 0, S("*6\r\n$5\r\nXREAD\r\n$5\r\nCOUNT\r\n$2\r\n1"), CODEC_MORE, 31);
    expect_whole(&codec_resp, false, 0, S("*6\r\n$5\r\nXREAD\r\n$40\r\nBLO"), CODEC_MORE, 23);
    expect_whole(&codec_resp, false, 0, S("*4\r\n$5\r\nXREAD\r\n$7\r\nSTREAMS\r\n$5\r\nblo"), CODEC_MORE, 35);
    /* after GET, nothing is inspected */
    expect_whole(&codec_resp, false, 0, S("*3\r\n$3\r\nGET\r\n$5\r\nBLO"), CODEC_MORE, 20);
}
END_TEST

START_TEST(test_resp_reply)
{
    const struct codec_ops *c = &codec_resp;

    expect_reply(c, CODEC_REPLY_CLIENT_ERROR, "MULTI is not supported", 512,
                 "-ERR proximux: MULTI is not supported\r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "upstream closed", 512, "-ERR proximux: upstream closed\r\n");
    expect_reply(c, CODEC_REPLY_TIMEOUT, "timed out", 512, "-ERR proximux: timed out\r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 512, "-ERR proximux: queue full\r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "bad\r\nline\n", 512, "-ERR proximux: badline\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 512, "+OK\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 5, "+OK\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 4, "");
    /* truncation to cap */
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 20, "-ERR proximux: que\r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 17, "-ERR proximux: \r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 16, "");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 0, "");
    expect_reply(c, CODEC_REPLY_BUSY, "a\r\nb", 19, "-ERR proximux: ab\r\n");
}
END_TEST

Suite *codec_resp_suite(void)
{
    Suite *s = suite_create("codec_resp");
    TCase *tc = tcase_create("basic");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_resp_requests);
    tcase_add_test(tc, test_resp_responses);
    tcase_add_test(tc, test_resp_bad);
    tcase_add_test(tc, test_resp_reply);
    tcase_add_test(tc, test_resp_xread);
    tcase_add_test(tc, test_resp_table);
    tcase_add_test(tc, test_resp_deep);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_resp_big);
    tcase_add_test(big, test_resp_many);
    suite_add_tcase(s, big);
    return s;
}
