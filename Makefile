# Proximux: hand-written GNU make. One static library holds every module but
# main.c; the daemon and the Check test runner both link it.
#
#   make            build ./proximux
#   make test       unit tests, then integration tests against real servers
#   make asan       the same tests, built with AddressSanitizer + UBSan
#   make bench      benchmarks (see bench/README.md); not part of test
#   make fuzz       libFuzzer harnesses, FUZZ_SECONDS each (tests/fuzz/)
#   make lint       cppcheck and clang-tidy with the checks of .clang-tidy
#   make install    binary, man page, example configuration, systemd units
#                   (PREFIX=/usr/local, DESTDIR for staging); make uninstall
#   make valgrind   integration tests with Proximux under valgrind
#   make clean

CC       ?= cc
BUILD    ?= build
BIN      ?= proximux
OPT      ?= -O2
CFLAGS   ?=
SANITIZE ?=

# make install: Debian's places. The configuration goes to /etc and the
# units to /lib/systemd/system whatever PREFIX is (DESTDIR still applies).
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/proximux
CONFDIR    ?= /etc/proximux
UNITDIR    ?= /lib/systemd/system
INSTALL    ?= install

WARN = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
       -Wmissing-prototypes -Wformat=2 -Wundef -Wvla -Wwrite-strings \
       -Wno-unused-parameter
# -pthread: the resolver's helper thread (src/core/resolver.c).
PMX_CFLAGS = -std=gnu11 $(OPT) -g $(WARN) -D_GNU_SOURCE -pthread -Iinclude -MMD -MP \
             $(SANITIZE) $(CFLAGS)
PMX_LDFLAGS = -pthread $(SANITIZE) $(LDFLAGS)

YAML_LIBS  := $(shell pkg-config --libs yaml-0.1 2>/dev/null || echo -lyaml)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -pthread)

# The one list of sources, by layer; lint and fuzz read it (make print-src).
CORE_SRC     := src/core/reactor.c src/core/buf.c src/core/conn.c src/core/net.c src/core/log.c \
                src/core/signals.c src/core/resolver.c src/core/notify.c src/core/cidr.c src/core/cidr_set.c
PROTO_SRC    := src/proto/codec.c src/proto/codec_raw.c src/proto/codec_line.c \
                src/proto/codec_resp.c src/proto/codec_memcache.c src/proto/codec_http.c \
                src/proto/resp_session.c src/proto/proxy_protocol.c src/proto/mysql.c src/proto/peek.c
UPSTREAM_SRC := src/upstream/upstream.c src/upstream/balancer.c src/upstream/health.c
EXCHANGE_SRC := src/exchange/exchange.c src/exchange/exchange_proxy.c src/exchange/exchange_mux.c src/exchange/mux_client.c src/exchange/mux_request.c src/exchange/mux_upstream.c \
                src/exchange/mux_sched.c src/exchange/mux_session.c src/exchange/proxy_mysql.c
SERVICE_SRC  := src/service/listener.c src/service/service.c src/service/activation.c src/service/proxy_accept.c \
                src/service/daemon.c src/service/upgrade.c src/service/access.c
ROUTE_SRC    := src/route/route.c
CONFIG_SRC   := src/config/config_schema.c src/config/config.c src/config/config_dump.c \
                src/config/config_env.c src/config/config_yaml.c
STATS_SRC    := src/stats/stats.c src/admin/admin.c src/stats/request_log.c
LIB_SRC      := $(CORE_SRC) $(PROTO_SRC) $(UPSTREAM_SRC) $(EXCHANGE_SRC) $(SERVICE_SRC) $(CONFIG_SRC) \
                $(STATS_SRC) $(ROUTE_SRC)
MAIN_SRC     := src/main.c

LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/src/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.o)
LIB      := $(BUILD)/libproximux.a
RUNNER   := $(BUILD)/test_runner

.PHONY: all test unit integration asan bench bench-route fuzz lint valgrind clean print-src install uninstall

all: $(BIN)

$(BIN): $(MAIN_OBJ) $(LIB)
	$(CC) $(PMX_LDFLAGS) -o $@ $^ $(YAML_LIBS)

$(LIB): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(PMX_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(PMX_CFLAGS) -c -o $@ $<

$(RUNNER): $(TEST_OBJ) $(LIB)
	$(CC) $(PMX_LDFLAGS) -o $@ $^ $(YAML_LIBS) $(CHECK_LIBS)

test: unit integration

# Check kills a test after 4 s by default; sanitizer builds of the codec
# tests (every split of every message) need longer on a slow machine.
unit: $(RUNNER)
	CK_DEFAULT_TIMEOUT=120 $(RUNNER)

integration: $(BIN)
	PROXIMUX_BIN=$(abspath $(BIN)) python3 tests/integration/run.py

asan:
	PMX_IT_TIME_FACTOR=3 $(MAKE) BUILD=build/asan BIN=build/asan/proximux OPT=-O1 \
	    SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    test

bench: $(BIN)
	bash bench/run.sh

# Routing decision latency (bench/route_decide.c).
bench-route: $(LIB)
	$(CC) $(PMX_CFLAGS) -o $(BUILD)/route_decide bench/route_decide.c $(LIB) $(YAML_LIBS)
	$(BUILD)/route_decide

fuzz:
	bash tests/fuzz/run.sh

lint:
	bash tests/lint.sh

valgrind: $(BIN)
	PROXIMUX_BIN=$(abspath $(BIN)) bash tests/integration/valgrind.sh

clean:
	rm -rf build $(BIN)

# The configuration in CONFDIR is installed only where none exists, and
# uninstall leaves it (it is the user's). The unit runs the binary where it
# was installed.
install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(CONFDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(BIN) $(DESTDIR)$(SBINDIR)/proximux
	$(INSTALL) -m 644 man/proximux.8 $(DESTDIR)$(MANDIR)/man8/proximux.8
	$(INSTALL) -m 644 README.md proximux.yaml.example config/proximux.env $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 644 config/examples/*.yaml $(DESTDIR)$(DOCDIR)/examples/
	test -e $(DESTDIR)$(CONFDIR)/proximux.yaml || \
	    $(INSTALL) -m 644 proximux.yaml.example $(DESTDIR)$(CONFDIR)/proximux.yaml
	sed 's|/usr/local/sbin/proximux|$(SBINDIR)/proximux|g' config/proximux.service \
	    > $(DESTDIR)$(UNITDIR)/proximux.service
	chmod 644 $(DESTDIR)$(UNITDIR)/proximux.service
	$(INSTALL) -m 644 config/proximux.socket $(DESTDIR)$(UNITDIR)/proximux.socket

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/proximux $(DESTDIR)$(MANDIR)/man8/proximux.8 \
	    $(DESTDIR)$(UNITDIR)/proximux.service $(DESTDIR)$(UNITDIR)/proximux.socket
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "$(DESTDIR)$(CONFDIR) is kept (your configuration); remove it by hand if you wish."

# The library's sources, one per line, for tests/lint.sh and tests/fuzz/run.sh.
print-src:
	@printf '%s\n' $(LIB_SRC)

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
