# zmbatch - plain GNU Makefile.
#
#   make            build bin/zmbatch
#   make check      unit + integration tests (Check); starts its own simulators and slapd
#   make asan       the same suite built with AddressSanitizer + UBSan
#   make tsan       the multi-threaded suites built with ThreadSanitizer
#   make install    PREFIX=/usr/local DESTDIR=
#   make lint       cppcheck over src/
#   make clean
#
# Every dependency is found with pkg-config (PKG_CONFIG may be overridden);
# OpenLDAP falls back to plain -lldap -llber where ldap.pc is missing.

PKG_CONFIG ?= pkg-config
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
PYTHON ?= python3

# VARIANT selects the build directory and flags: release (default), asan, tsan.
VARIANT ?= release
B := build/$(VARIANT)

CFLAGS ?= -O2 -g
WARN := -std=c11 -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	-Wvla -Wwrite-strings -fno-common -Wshadow=local -Wformat=2 -Wno-format-nonliteral
CPPFLAGS_ALL := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Isrc -I$(B)

ifeq ($(VARIANT),asan)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ifeq ($(VARIANT),tsan)
SAN := -fsanitize=thread -fno-omit-frame-pointer
endif

PKGS := libconfig sqlite3 libcurl jansson libxml-2.0 zlib
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
ifeq ($(shell $(PKG_CONFIG) --exists ldap && echo 1),1)
LDAP_CFLAGS := $(shell $(PKG_CONFIG) --cflags ldap lber 2>/dev/null)
LDAP_LIBS := $(shell $(PKG_CONFIG) --libs ldap lber 2>/dev/null)
else
LDAP_CFLAGS :=
LDAP_LIBS := -lldap -llber
endif
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

ALL_CFLAGS = $(WARN) $(CFLAGS) $(SAN) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(LDAP_CFLAGS) -pthread -MMD -MP
ALL_LIBS = $(PKG_LIBS) $(LDAP_LIBS) -pthread -lm

SRCS := $(sort $(wildcard src/*.c))
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LIB_OBJS := $(patsubst src/%.c,$(B)/src/%.o,$(LIB_SRCS)) $(B)/schema_gen.o
SCHEMA := $(sort $(wildcard schema/*.sql))

TEST_SRCS := $(sort $(wildcard tests/check_*.c))
TEST_BINS := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRCS))
TEST_SUPPORT := $(patsubst tests/%.c,$(B)/tests/%.o,$(filter-out $(TEST_SRCS),$(wildcard tests/*.c)))

ifeq ($(VARIANT),release)
BIN := bin/zmbatch
else
BIN := $(B)/zmbatch
endif

.PHONY: all check unit asan tsan install clean lint bench fuzz demo
all: $(BIN)

$(BIN): $(B)/src/main.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(ALL_LIBS)

$(B)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# schema/NNN_*.sql are compiled into the binary as C strings.
$(B)/schema_gen.c: $(SCHEMA) Makefile
	@mkdir -p $(dir $@)
	@{ echo '/* generated from schema/NNN_name.sql by the Makefile; do not edit */'; \
	   echo '#include <stddef.h>'; \
	   n=0; for f in $(SCHEMA); do \
	     echo "static const char schema_$$n[] = {"; \
	     od -An -v -tx1 "$$f" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	     echo '0 };'; n=$$((n+1)); done; \
	   echo 'const char *const zmb_schema[] = {'; \
	   n=0; for f in $(SCHEMA); do echo "schema_$$n,"; n=$$((n+1)); done; \
	   echo 'NULL };'; \
	   echo 'const char *const zmb_schema_names[] = {'; \
	   for f in $(SCHEMA); do echo "\"$$(basename $$f)\","; done; \
	   echo 'NULL };'; } > $@.tmp && mv $@.tmp $@

$(B)/schema_gen.o: $(B)/schema_gen.c
	$(CC) $(filter-out -Wmissing-prototypes,$(ALL_CFLAGS)) -Wno-missing-variable-declarations -c -o $@ $<

$(B)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -c -o $@ $<

$(B)/tests/check_%: $(B)/tests/check_%.o $(TEST_SUPPORT) $(LIB_OBJS)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(CHECK_LIBS) $(ALL_LIBS)

# Each runner prints Check's summary; tests/run-tests sums them up.
check: $(BIN) $(TEST_BINS)
	ZMBATCH_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) PYTHON=$(PYTHON) \
		sh tests/run-tests $(TEST_BINS)

# only the unit suites (no simulators, no slapd)
unit: $(BIN) $(TEST_BINS)
	ZMBATCH_BIN=$(abspath $(BIN)) BUILD_DIR=$(abspath $(B)) TESTS_UNIT_ONLY=1 \
		sh tests/run-tests $(TEST_BINS)

asan:
	$(MAKE) VARIANT=asan CC=$(CC) check

# ThreadSanitizer over the suites that start threads.
tsan:
	$(MAKE) VARIANT=tsan CC=$(CC) CFLAGS="-O1 -g" check

lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem -Isrc src/

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/doc/zmbatch/examples
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/zmbatch
	install -m 0644 conf/zmbatch.1 $(DESTDIR)$(PREFIX)/share/man/man1/zmbatch.1
	install -m 0644 $(filter-out conf/zmbatch.1,$(wildcard conf/*)) \
		$(DESTDIR)$(PREFIX)/share/doc/zmbatch/examples/

# benchmarks (issue 6): tests/bench/run drives them; figures go to tests/bench/RESULTS.md
BENCH_DBSCALE := $(B)/tests/bench/dbscale
$(BENCH_DBSCALE): tests/bench/dbscale.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -o $@ $< $(LIB_OBJS) $(ALL_LIBS)

bench: $(BIN) $(BENCH_DBSCALE)
	ZMBATCH_BIN=$(abspath $(BIN)) DBSCALE_BIN=$(abspath $(BENCH_DBSCALE)) PYTHON=$(PYTHON) \
		sh tests/bench/run

demo: $(BIN)
	sh bin/demo

clean:
	rm -rf build bin/zmbatch tests/out

-include $(wildcard $(B)/src/*.d $(B)/tests/*.d)
