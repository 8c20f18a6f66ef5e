# zmbatch - plain GNU Makefile.
#
#   make            build bin/zmbatch
#   make check      unit + integration tests (Check); starts its own simulators and slapd
#   make asan       the same suite built with AddressSanitizer + UBSan
#   make tsan       the multi-threaded suites built with ThreadSanitizer
#   make install    PREFIX=/usr/local DESTDIR=
#   make lint       one-way layers and no circle in src/ (tests/layers.py), cppcheck over src/
#   make mutate     break the product on purpose (tests/mutate/mutations.txt) and check
#                   that the suites catch each break; MUTATIONS="name ..." for a subset
#   make clean
#
# Every dependency is found with pkg-config (PKG_CONFIG may be overridden);
# OpenLDAP falls back to plain -lldap -llber where ldap.pc is missing.

PKG_CONFIG ?= pkg-config
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
# The interpreter itself, found once: under pyenv, `python3` is a shell shim
# that costs about 0.2 s of CPU on every start, and the suites start a
# simulator hundreds of times.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(shell python3 -c 'import sys; print(sys.executable)' 2>/dev/null),python3)
endif

# VARIANT selects the build directory and flags: release (default), asan, tsan.
VARIANT ?= release
B := build/$(VARIANT)

CFLAGS ?= -O2 -g
WARN := -std=c11 -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	-Wvla -Wwrite-strings -fno-common -Wshadow=local -Wformat=2 -Wno-format-nonliteral
# src/ is layered (README "Architecture"); each layer's folder is on the
# include path, and `make lint` (tests/layers.py) checks that the objects of a
# layer use nothing from a layer above it.
LAYERS := core conf state zimbra ldap xfer stages report cli
CPPFLAGS_ALL := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(addprefix -Isrc/,$(LAYERS)) -I$(B)

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

SRCS := $(sort $(wildcard $(addsuffix /*.c,$(addprefix src/,$(LAYERS)))))
LIB_SRCS := $(filter-out src/cli/main.c,$(SRCS))
LIB_OBJS := $(patsubst src/%.c,$(B)/src/%.o,$(LIB_SRCS)) $(B)/schema_gen.o
SCHEMA := $(sort $(wildcard schema/*.sql))
# The test build: the same objects, but src/core/testhooks.c compiled with
# -DZMBATCH_TESTING (crash points, fake free space).  bin/zmbatch links the
# inert testhooks.o and obeys no test environment variable; the runners and
# $(HOOKS_BIN) (the binary the crash and disk tests spawn) link the live one.
TEST_LIB_OBJS := $(filter-out $(B)/src/core/testhooks.o,$(LIB_OBJS)) $(B)/src/core/testhooks-live.o
HOOKS_BIN := $(B)/zmbatch-testhooks

ALL_TEST_SRCS := $(sort $(wildcard tests/check_*.c))
# TEST_SRCS may be narrowed on the command line (make tsan does)
# the longest suites first, so that two at a time (RUN_TESTS_JOBS=2) end together
SLOW_SUITES := check_e2e_crash check_e2e_cutover check_e2e_migrate check_e2e_faults check_e2e_cron
TEST_SRCS := $(patsubst %,tests/%.c,$(SLOW_SUITES)) $(filter-out $(patsubst %,tests/%.c,$(SLOW_SUITES)),$(ALL_TEST_SRCS))
TEST_BINS := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRCS))
TEST_SUPPORT := $(patsubst tests/%.c,$(B)/tests/%.o,$(filter-out $(ALL_TEST_SRCS),$(wildcard tests/*.c)))

ifeq ($(VARIANT),release)
BIN := bin/zmbatch
else
BIN := $(B)/zmbatch
endif

.PHONY: all check unit asan tsan install clean lint bench fuzz demo mutate
all: $(BIN)

$(BIN): $(B)/src/cli/main.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(ALL_LIBS)

$(B)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/src/core/testhooks-live.o: src/core/testhooks.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DZMBATCH_TESTING -c -o $@ $<

$(HOOKS_BIN): $(B)/src/cli/main.o $(TEST_LIB_OBJS)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(ALL_LIBS)

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

$(B)/tests/check_%: $(B)/tests/check_%.o $(TEST_SUPPORT) $(TEST_LIB_OBJS)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(CHECK_LIBS) $(ALL_LIBS)

# Unit runners (tests/check_unit_*.c) link only the objects of the layers named
# in UNIT_LAYERS_<runner> (their module's layer and below), the single objects
# named in UNIT_MODULES_<runner> (a module of a higher layer without the rest
# of that layer) and the test support named in UNIT_SUPPORT_<runner>: a module
# that starts to need a higher layer, or another module of its own layer, no
# longer links its unit suite.  (Longest-stem rule: it wins over check_%.)
UNIT_LAYERS_check_unit_runctl := core
UNIT_LAYERS_check_unit_shard := core
UNIT_LAYERS_check_unit_token := core conf zimbra
UNIT_LAYERS_check_unit_http := core conf zimbra
UNIT_LAYERS_check_unit_soap := core conf zimbra
UNIT_LAYERS_check_unit_rest := core conf zimbra
UNIT_LAYERS_check_unit_throttle := core conf zimbra
UNIT_LAYERS_check_unit_ldapfmt := core ldap
UNIT_MODULES_check_unit_ldapfmt := stages/ldap_format stages/ldap_cnconfig
UNIT_LAYERS_check_unit_verify := core
UNIT_MODULES_check_unit_verify := xfer/verify xfer/driver
UNIT_SUPPORT_check_unit_runctl := testutil
UNIT_SUPPORT_check_unit_shard := testutil
UNIT_SUPPORT_check_unit_token := testutil
UNIT_SUPPORT_check_unit_http := testutil canned
UNIT_SUPPORT_check_unit_soap := testutil canned
UNIT_SUPPORT_check_unit_rest := testutil canned
UNIT_SUPPORT_check_unit_throttle := testutil canned
UNIT_SUPPORT_check_unit_ldapfmt := testutil
UNIT_SUPPORT_check_unit_verify := testutil
unit_objs = $(foreach l,$(UNIT_LAYERS_$(1)),$(filter $(B)/src/$(l)/%,$(TEST_LIB_OBJS))) \
	$(patsubst %,$(B)/src/%.o,$(UNIT_MODULES_$(1))) \
	$(patsubst %,$(B)/tests/%.o,$(UNIT_SUPPORT_$(1)))
.SECONDARY: $(patsubst tests/%.c,$(B)/tests/%.o,$(wildcard tests/*.c))
.SECONDEXPANSION:
$(B)/tests/check_unit_%: $(B)/tests/check_unit_%.o $$(call unit_objs,check_unit_$$*)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(CHECK_LIBS) $(ALL_LIBS)

# Each runner prints Check's summary; tests/run-tests sums them up.
check: $(BIN) $(HOOKS_BIN) $(TEST_BINS)
	sh tests/run-tests-selftest
	ZMBATCH_BIN=$(abspath $(BIN)) ZMBATCH_HOOKS_BIN=$(abspath $(HOOKS_BIN)) BUILD_DIR=$(abspath $(B)) PYTHON=$(PYTHON) \
		sh tests/run-tests $(TEST_BINS)

# only the unit suites (no simulators, no slapd)
unit: $(BIN) $(HOOKS_BIN) $(TEST_BINS)
	ZMBATCH_BIN=$(abspath $(BIN)) ZMBATCH_HOOKS_BIN=$(abspath $(HOOKS_BIN)) BUILD_DIR=$(abspath $(B)) TESTS_UNIT_ONLY=1 \
		sh tests/run-tests $(TEST_BINS)

# ASan + UBSan (+ LeakSanitizer) over the whole suite: the runners and, through
# ZMBATCH_BIN, the sanitized build/asan/zmbatch they spawn.  Any report fails
# the run (halt_on_error; UBSan does not recover, see SAN above).
# tests/lsan.supp lists third-party noise only, each entry justified.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0
asan:
	$(SAN_ENV) $(MAKE) VARIANT=asan CC=$(CC) check

# ThreadSanitizer over the suites that start threads: state (claim
# concurrency, 8 threads opening one DB), e2e client (token refresh from
# several workers), e2e migrate and faults (the worker pool in bin/zmbatch),
# unit and e2e throttle (one server's pace shared by the workers).
# e2e verdict: the verifier threads (verifier.c) and their hand-over queue.
# The single-threaded suites add nothing under TSan and would double its time.
TSAN_SUITES := check_e2e_migrate check_e2e_faults check_state check_e2e_client check_e2e_verdict \
	check_unit_throttle check_e2e_throttle check_e2e_route
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(abspath tests/tsan.supp)
tsan:
	$(TSAN_ENV) $(MAKE) VARIANT=tsan CC=$(CC) CFLAGS="-O1 -g" \
		TEST_SRCS="$(patsubst %,tests/%.c,$(TSAN_SUITES))" check

# cppcheck over src/ with these checks: warning, style, portability,
# performance (all enabled classes must be clean); variableScope (a style
# preference for declaring at first use) is not enforced.
LINT_CHECKS := warning,style,portability,performance
lint: $(LIB_OBJS) $(B)/src/cli/main.o
	$(PYTHON) tests/layers.py $(B)
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=$(LINT_CHECKS) \
		--inline-suppr --suppress=missingIncludeSystem --suppress=variableScope $(addprefix -Isrc/,$(LAYERS)) \
		-D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE src/

# Each mutation is applied to a copy of the tree (with a copy of $(B), so that
# only the mutated file is rebuilt), built, and the suites named for it must
# fail there; driver and file format: tests/mutate/mutate.py.
# MUTATE_BUILD and MUTATE_ENV: the binaries and variables of `make check`.
mutate: $(BIN) $(HOOKS_BIN)
	VARIANT=$(VARIANT) PYTHON=$(PYTHON) MUTATE_BUILD="$(BIN) $(HOOKS_BIN)" \
		MUTATE_ENV="ZMBATCH_BIN=$(BIN) ZMBATCH_HOOKS_BIN=$(HOOKS_BIN) BUILD_DIR=$(B)" \
		$(PYTHON) tests/mutate/mutate.py $(MUTATIONS)

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

-include $(wildcard $(B)/src/*/*.d $(B)/tests/*.d)

# ---- fuzzing (issue 7) --------------------------------------------------
# make fuzz [FUZZ_SECONDS=30] [FUZZ_TARGETS="conf soap"]
# Builds every tests/fuzz/fuzz_<t>.c as a libFuzzer binary build/fuzz/fuzz_<t>
# with clang -fsanitize=fuzzer,address,undefined, linked against src/ objects
# compiled with clang and the same sanitizers into build/fuzz/src/, then runs
# each for FUZZ_SECONDS (-max_total_time) over its seeds tests/fuzz/corpus/<t>
# and the inputs that once crashed tests/fuzz/regress/<t> when present (dictionary
# tests/fuzz/<t>.dict if present; LSan suppressions tests/fuzz/lsan.supp).
# New corpus units go to build/fuzz/corpus/<t>, crash inputs to build/fuzz/crashes/<t>-*, logs to build/fuzz/fuzz_<t>.log.
# Fails if any target crashed.  tests/check_fuzz_regress replays the seeds and
# regression inputs in `make check` with the normal compiler.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30
FUZZ_B := build/fuzz
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = $(filter-out -Wshadow=local,$(WARN)) -O1 -g $(FUZZ_SAN) $(CPPFLAGS_ALL) \
	$(PKG_CFLAGS) $(LDAP_CFLAGS) -pthread -MMD -MP
FUZZ_LIB_OBJS := $(patsubst src/%.c,$(FUZZ_B)/src/%.o,$(LIB_SRCS)) $(FUZZ_B)/schema_gen.o
FUZZ_BINS := $(patsubst %,$(FUZZ_B)/fuzz_%,$(FUZZ_TARGETS))

$(FUZZ_B)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_B)/schema_gen.o: $(B)/schema_gen.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -Wmissing-prototypes,$(FUZZ_CFLAGS)) -c -o $@ $<

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< $(FUZZ_LIB_OBJS) $(ALL_LIBS)

fuzz: $(FUZZ_BINS)
	@tmp=$$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp} ); \
	fail=""; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_B)/corpus/$$t $(FUZZ_B)/crashes tests/fuzz/corpus/$$t; \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  reg=; [ -d tests/fuzz/regress/$$t ] && reg=tests/fuzz/regress/$$t; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS)s"; \
	  if ZMB_FUZZ_TMP=$$tmp LSAN_OPTIONS=suppressions=$(abspath tests/fuzz/lsan.supp) \
	       $(FUZZ_B)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	       -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_B)/crashes/$$t- $$dict \
	       $(FUZZ_B)/corpus/$$t tests/fuzz/corpus/$$t $$reg \
	       >$(FUZZ_B)/fuzz_$$t.log 2>&1; then \
	    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov: .* (DONE|INITED)' \
	      $(FUZZ_B)/fuzz_$$t.log | tail -3; \
	  else \
	    tail -40 $(FUZZ_B)/fuzz_$$t.log; fail="$$fail $$t"; \
	    echo "fuzz_$$t FAILED: input in $(FUZZ_B)/crashes/, log $(FUZZ_B)/fuzz_$$t.log"; \
	  fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: crashes in:$$fail"; exit 1; fi; echo "fuzz: no crash"

-include $(wildcard $(FUZZ_B)/src/*/*.d $(FUZZ_B)/*.d)
