# mailgw — top-level build.  Plain GNU make.
#
#   make            build libmailgw.a, the daemons (build/libexec/) and the
#                   user commands (build/bin/)
#   make deps       install missing Debian packages (root) or say which
#   make run        deps + build + start the gateway in the foreground
#   make test       deps + build + the whole suite under prove
#   make asan       the same build with AddressSanitizer + UBSan (build-asan/)
#   make fuzz       libFuzzer targets over the seed corpora in t/fuzz/
#   make install    install under PREFIX and create the mailgw user
#
# Sources are found by wildcard: a new lib/MODULE/*.c joins libmailgw.a, a
# new file in a program folder joins that program, t/unit/NAME.t.c becomes
# the TAP binary build/t/unit/NAME.t, t/fuzz/NAME.c a fuzz target.

B        ?= build
CC       ?= cc
OPT      ?= -O2
SAN      ?=
CFLAGS   += -std=c11 -D_GNU_SOURCE -g $(OPT) $(SAN) -pipe \
            -Wall -Wextra -Wformat=2 -Wshadow -Wno-unused-parameter \
            -Wno-format-nonliteral -Werror \
            -fno-strict-aliasing -Ilib
LDFLAGS  += $(SAN) -Wl,--as-needed
LIBS     := -levent_openssl -levent -lssl -lcrypto -lldns -lclamav -lspf2 \
            -lpcre2-8 -lbz2 -lm

PREFIX   ?= /usr/local
SYSCONF  ?= /etc/mailgw

LIB_SRC  := $(sort $(wildcard lib/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
LIBA     := $(B)/libmailgw.a

DAEMONS  := master smtpd qmgr smtp scand spfd quarantine
DAEMONS  := $(foreach d,$(DAEMONS),$(if $(wildcard $(d)/*.c),$(d)))
DAEMON_BINS := $(DAEMONS:%=$(B)/libexec/%)

MAILGW_SRC  := $(wildcard cli/mailgw.c cli/mailgw_*.c)
MAILGWQ_SRC := $(wildcard cli/mailgwq.c cli/mailgwq_*.c)
CLI_SHARED  := $(wildcard cli/cli_*.c)
USER_BINS   := $(if $(MAILGW_SRC),$(B)/bin/mailgw) $(if $(MAILGWQ_SRC),$(B)/bin/mailgwq)

UNIT_SRC := $(sort $(wildcard t/unit/*.t.c))
UNIT_BINS := $(UNIT_SRC:t/unit/%.t.c=$(B)/t/unit/%.t)
TEST_HELPER_SRC := $(sort $(wildcard t/helpers/*.c))
TEST_HELPERS := $(TEST_HELPER_SRC:t/helpers/%.c=$(B)/t/helpers/%)

DEPS_PKGS := build-essential pkg-config libevent-dev libssl-dev libldns-dev \
    libclamav-dev libspf2-dev libpcre2-dev libsnmp-dev libbz2-dev \
    clang libclang-rt-14-dev perl swaks postfix nsd unbound rbldnsd \
    ldnsutils dnsutils clamav-testfiles snmpd snmptrapd python3 \
    python3-aiosmtpd openssl zip unzip p7zip-full bzip2 gzip tar strace

.PHONY: all deps run test asan asan-test fuzz install clean unit user

all: $(LIBA) $(DAEMON_BINS) $(USER_BINS) $(UNIT_BINS) $(TEST_HELPERS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

define daemon_rule
$(B)/libexec/$(1): $(patsubst %.c,$(B)/obj/%.o,$(wildcard $(1)/*.c)) $(LIBA)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBA) $$(LIBS)
endef
$(foreach d,$(DAEMONS),$(eval $(call daemon_rule,$(d))))

$(B)/bin/mailgw: $(MAILGW_SRC:%.c=$(B)/obj/%.o) $(CLI_SHARED:%.c=$(B)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBA) $(LIBS)

$(B)/bin/mailgwq: $(MAILGWQ_SRC:%.c=$(B)/obj/%.o) $(CLI_SHARED:%.c=$(B)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBA) $(LIBS)

$(B)/t/unit/%.t: $(B)/obj/t/unit/%.t.o $(B)/obj/t/unit/tap.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(B)/obj/t/unit/tap.o $(LIBA) $(LIBS)

$(B)/obj/t/unit/%.t.o: t/unit/%.t.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -It/unit -MMD -MP -c $< -o $@

$(B)/t/helpers/%: $(B)/obj/t/helpers/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBA) $(LIBS)

unit: $(UNIT_BINS)

# Set-up: on a fresh Debian 12 machine this installs what the build and
# the tests need.  Only missing packages are installed.
deps:
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "make deps: missing packages:$$missing"; \
	    echo "make deps: run 'sudo make deps' (or install them with apt-get) first"; exit 1; \
	  fi; \
	fi

# As root, master drops the daemons to [mailgw.options] User (mailgw).
user:
	@if [ "$$(id -u)" = 0 ] && ! getent passwd mailgw >/dev/null; then \
	  useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin --user-group mailgw && \
	  echo "make: created system user mailgw"; fi

run: deps all user
	$(B)/bin/mailgw -c conf/mailgw.conf start -f

test: deps all
	prove -r t/ $(B)/t/

asan:
	$(MAKE) B=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all

# The whole suite against the sanitizer build (integration tests find the
# binaries through MAILGW_BUILD).  Slower; not part of 'make test'.
asan-test: deps asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 MAILGW_BUILD=build-asan prove -r t/ build-asan/t/

FUZZ_SRC := $(sort $(wildcard t/fuzz/*.c))
FUZZ_BINS := $(FUZZ_SRC:t/fuzz/%.c=build-fuzz/fuzz/%)
FUZZ_SECONDS ?= 30
build-fuzz/fuzz/%: t/fuzz/%.c
	$(MAKE) B=build-fuzz CC=clang OPT=-O1 SAN="-fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libmailgw.a
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Ilib -fsanitize=fuzzer,address,undefined $< build-fuzz/libmailgw.a $(LIBS) -o $@
fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 build-fuzz/corpus/$$n t/fuzz/$$n/ || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/libexec/mailgw $(DESTDIR)$(SYSCONF)
	install -m 0755 $(USER_BINS) $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(DAEMON_BINS) $(DESTDIR)$(PREFIX)/libexec/mailgw/
	[ -f $(DESTDIR)$(SYSCONF)/mailgw.conf ] || install -m 0644 conf/mailgw.conf $(DESTDIR)$(SYSCONF)/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	-install -m 0644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	-install -m 0644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	-install -m 0644 man/man8/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	@[ -n "$(DESTDIR)" ] || $(MAKE) --no-print-directory user

clean:
	rm -rf build build-asan build-fuzz

# Keep intermediate objects (unit tests and helpers are built by pattern
# chains) so a second make does not rebuild them.
.SECONDARY:

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
