#!/usr/bin/env bash
# Static analysis of the tree: cppcheck and clang-tidy with the curated
# checks of .clang-tidy, pyflakes on the Python tests. Exits non-zero on
# any finding.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cppcheck"
cppcheck --quiet --enable=warning,performance,portability --inline-suppr \
    --error-exitcode=1 -I include --std=c11 -D_GNU_SOURCE src/ tests/*.c

echo "== clang-tidy"
# Files go before "--", compiler flags after it.
# Lua's headers (src/script/script.c) live in their own directory; as
# system headers, so that findings in them are not ours.
LUA_CFLAGS=$(pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_CFLAGS=${LUA_CFLAGS//-I/-isystem }
export LUA_CFLAGS
{ make -s --no-print-directory print-src; echo src/main.c; } | xargs -P "$(nproc)" -n 4 sh -c \
    'clang-tidy --quiet "$@" -- -std=gnu11 -D_GNU_SOURCE -Iinclude $LUA_CFLAGS' clang-tidy
echo "== pyflakes"
/usr/bin/python3 -m pyflakes tests/integration/*.py tests/integration/peers/*.py tests/integration/clients/*.py

echo "lint: clean"
