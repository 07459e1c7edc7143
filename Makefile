# cfr build. `make` builds the engine, the daemon and the tools;
# `make check` runs every test (see tests/run); `make demo` runs the lab demo.
CC ?= cc
BUILD ?= build
PKGS := libsodium inih json-c libseccomp libxdp libbpf libnftables
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -pthread -Iinclude $(WARN)
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
# libFuzzer builds (clang only): `make fuzz` sets this for build-fuzz/.
ifeq ($(FUZZ),1)
CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
endif
LDLIBS_SODIUM := $(shell pkg-config --libs libsodium)

LIB_SRC := $(wildcard src/lib/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CFRD_SRC := $(wildcard src/cfrd/*.c)
# cfrd's BPF programs (src/NAME/cfr_NAME.bpf.c: the XDP program of the
# AF_XDP path, the TC fast path), compiled for the kernel's BPF machine and
# linked into cfrd as cfr_NAME_object.
BPF_PROGS := xdp tc
CFRD_OBJ := $(CFRD_SRC:%.c=$(BUILD)/%.o) $(BPF_PROGS:%=$(BUILD)/src/cfrd/%_object.o)
BPF_CFLAGS := -O2 -g -target bpf -Wall -Wextra -Werror -I/usr/include/$(shell gcc -print-multiarch)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELPER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c)))

# Sealed accountability records: written by cfrd, read by cfr-lookup.
RECORDS_SRC := $(wildcard src/records/*.c)
RECORDS_OBJ := $(RECORDS_SRC:%.c=$(BUILD)/%.o)
LOOKUP_SRC := $(wildcard src/tools/lookup/*.c)
LOOKUP_OBJ := $(LOOKUP_SRC:%.c=$(BUILD)/%.o)
AUDIT_SRC := $(wildcard src/tools/audit/*.c)
AUDIT_OBJ := $(AUDIT_SRC:%.c=$(BUILD)/%.o)
# The Prometheus exporter: a process of its own that reads the control socket.
EXPORTER_SRC := $(wildcard src/tools/exporter/*.c)
EXPORTER_OBJ := $(EXPORTER_SRC:%.c=$(BUILD)/%.o)

PROGS := $(BUILD)/cfrd $(BUILD)/cfrctl $(if $(AUDIT_SRC),$(BUILD)/cfr-audit) \
	$(if $(LOOKUP_SRC),$(BUILD)/cfr-lookup) \
	$(if $(wildcard src/tools/cfr-keygen.c),$(BUILD)/cfr-keygen) \
	$(if $(EXPORTER_SRC),$(BUILD)/cfr-exporter)

.PHONY: all unit check demo clean format bench-engine
all: $(PROGS)

$(BUILD)/%.o: %.c $(wildcard include/cfr/*.h include/cfr/internal/*.h src/*/*.h src/tools/*/*.h tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/src/%.bpf.o: src/%.bpf.c $(wildcard src/xdp/*.h src/tc/*.h)
	@mkdir -p $(dir $@)
	clang $(BPF_CFLAGS) -c $< -o $@

define bpf_embed
$(BUILD)/src/cfrd/$(1)_object.o: src/cfrd/bpf_object.S $(BUILD)/src/$(1)/cfr_$(1).bpf.o
	@mkdir -p $$(dir $$@)
	$$(CC) -c -DBPF_OBJECT=cfr_$(1)_object -DBPF_OBJECT_SIZE=cfr_$(1)_object_size \
		-DBPF_OBJECT_FILE='"$(BUILD)/src/$(1)/cfr_$(1).bpf.o"' $$< -o $$@
endef
$(foreach p,$(BPF_PROGS),$(eval $(call bpf_embed,$(p))))

# libcfr exports only what include/cfr/cfr.h declares with CFR_API: every
# other function of the engine is hidden. The programs link the static
# archive; the shared build exists to check the exports (`make exports`).
$(LIB_OBJ): CFLAGS += -fvisibility=hidden
$(BUILD)/libcfr.a: $(LIB_OBJ)
	ar rcs $@ $^

LIB_PIC_OBJ := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
$(BUILD)/pic/%.o: %.c $(wildcard include/cfr/*.h include/cfr/internal/*.h src/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@
$(BUILD)/libcfr.so: $(LIB_PIC_OBJ)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libcfr.so.0 -Wl,--no-undefined -o $@ $^ $(LDLIBS_SODIUM)

# The shared library's dynamic symbols (functions and data) are exactly cfr.h's CFR_API functions.
.PHONY: exports
exports: $(BUILD)/libcfr.so
	nm -D --defined-only $< | awk '{ print $$3 }' | sort >$(BUILD)/exports.got
	sed -n 's/^CFR_API .*[ *]\(cfr_[a-z0-9_]*\)(.*/\1/p' include/cfr/cfr.h | sort >$(BUILD)/exports.want
	diff -u $(BUILD)/exports.want $(BUILD)/exports.got

$(BUILD)/cfrd: $(CFRD_OBJ) $(RECORDS_OBJ) $(BUILD)/libcfr.a
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(shell pkg-config --libs $(PKGS))

$(BUILD)/cfrctl: $(BUILD)/src/tools/cfrctl.o
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs json-c)

$(BUILD)/cfr-lookup: $(LOOKUP_OBJ) $(RECORDS_OBJ) $(BUILD)/libcfr.a
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(PKGS))

$(BUILD)/cfr-keygen: $(BUILD)/src/tools/cfr-keygen.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_SODIUM)

$(BUILD)/cfr-audit: $(AUDIT_OBJ) $(BUILD)/libcfr.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_SODIUM) -lpcap -lm

$(BUILD)/cfr-exporter: $(EXPORTER_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libmicrohttpd json-c libseccomp)

# The archive again at the end: objects a test adds below may need engine functions too.
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(UNIT_HELPER_OBJ) $(RECORDS_OBJ) $(BUILD)/libcfr.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(BUILD)/libcfr.a -lcmocka $(LDLIBS_SODIUM) $(UNIT_LIBS)
# The handover image's test reads the engine's tables (src/lib/engine-t.h).
$(BUILD)/tests/unit/test_state.o: CFLAGS += -Isrc/lib
# Unit tests link the objects they test and reach them through their
# headers: none includes a .c file. test_xdp_route checks the AF_XDP
# backend's decisions (xdp_route.c) and the forward rules it refuses to skip.
$(BUILD)/tests/test_vnet: $(BUILD)/src/cfrd/vnet.o
$(BUILD)/tests/test_sandbox: $(BUILD)/src/cfrd/sandbox.o $(BUILD)/src/cfrd/log.o
$(BUILD)/tests/test_xdp_route: $(BUILD)/src/cfrd/xdp_route.o $(BUILD)/src/cfrd/forward_rules.o \
	$(BUILD)/src/cfrd/log.o
$(BUILD)/tests/test_xdp_route: UNIT_LIBS = $(shell pkg-config --libs libnftables json-c)
$(BUILD)/tests/test_egress_guard: $(BUILD)/src/cfrd/egress_guard.o $(BUILD)/src/cfrd/config.o \
	$(BUILD)/src/cfrd/log.o
$(BUILD)/tests/test_egress_guard: UNIT_LIBS = $(shell pkg-config --libs libnftables inih)
# cfrd's configuration key table (tests/unit/test_config.c).
$(BUILD)/tests/test_config: $(BUILD)/src/cfrd/config.o $(BUILD)/src/cfrd/log.o
$(BUILD)/tests/test_config: UNIT_LIBS = $(shell pkg-config --libs inih)
# The control socket (tests/unit/test_control.c).
$(BUILD)/tests/test_control: $(BUILD)/src/cfrd/control.o $(BUILD)/src/cfrd/log.o
$(BUILD)/tests/test_control: UNIT_LIBS = $(shell pkg-config --libs json-c)
# cfr-lookup's search over sealed records (tests/unit/test_records.c).
$(BUILD)/tests/test_records: $(BUILD)/src/tools/lookup/search.o
# cfrd's stats reply from a lab engine (tests/unit/test_stats_json.c).
$(BUILD)/tests/test_stats_json: $(BUILD)/src/cfrd/stats.o $(BUILD)/src/cfrd/log.o \
	$(BUILD)/src/cfrd/fastpath.o $(BUILD)/src/cfrd/forward_rules.o $(BUILD)/src/cfrd/tc_object.o
$(BUILD)/tests/test_stats_json: UNIT_LIBS = -pthread $(shell pkg-config --libs json-c libbpf libnftables)
# The exporter's rendering (tests/unit/test_exporter.c).
$(BUILD)/tests/test_exporter: $(BUILD)/src/tools/exporter/text.o
$(BUILD)/tests/test_exporter: UNIT_LIBS = $(shell pkg-config --libs json-c)
# cfr-audit's driver over several gateways (tests/unit/test_audit.c): every
# audit object but main, and of the helpers only the seed (the audit has a
# pkt_build() and pkt_parse() of its own).
$(BUILD)/tests/unit/test_audit.o: CFLAGS += -Isrc/tools/audit
$(BUILD)/tests/test_audit: $(BUILD)/tests/unit/test_audit.o $(BUILD)/tests/unit/seed.o \
	$(filter-out $(BUILD)/src/tools/audit/main.o,$(AUDIT_OBJ)) $(BUILD)/libcfr.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS_SODIUM) -lpcap -lm
# cfrd's sandbox, tested in forked children (tests/unit/test_sandbox.c).
$(BUILD)/tests/test_sandbox: UNIT_LIBS = -pthread $(shell pkg-config --libs libseccomp)

# The restart's handover is measured with cfrd's own state file code.
$(BUILD)/bench/engine/engine-bench.o: CFLAGS += -Isrc/cfrd
$(BUILD)/engine-bench: $(BUILD)/bench/engine/engine-bench.o $(BUILD)/src/cfrd/state_file.o $(BUILD)/libcfr.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_SODIUM)

unit: $(UNIT_BIN) $(BUILD)/tests/fastpath_equiv

# The fast path's program against the engine, packet for packet; it needs
# root, so tests/net/fastpath-equiv.sh runs it in a namespace of its own.
$(BUILD)/tests/fastpath_equiv: $(BUILD)/tests/net/fastpath_equiv.o $(UNIT_HELPER_OBJ) \
	$(BUILD)/src/cfrd/fastpath.o $(BUILD)/src/cfrd/forward_rules.o $(BUILD)/src/cfrd/log.o \
	$(BUILD)/src/cfrd/tc_object.o $(BUILD)/libcfr.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS_SODIUM) \
		$(shell pkg-config --libs libbpf libnftables json-c)

# Fuzz targets (tests/fuzz/): every cfrd module but main, the engine, and the
# independent packet builder for priming flows. Run them with tests/fuzz/run.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/%)
FUZZ_DEP := $(filter-out $(BUILD)/src/cfrd/main.o,$(CFRD_OBJ)) $(RECORDS_OBJ) \
	$(BUILD)/tests/unit/pkt.o $(BUILD)/libcfr.a
$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_DEP)
	$(CC) $(LDFLAGS) -pthread -fsanitize=fuzzer,address,undefined -o $@ $^ $(shell pkg-config --libs $(PKGS))
.PHONY: fuzz fuzz-targets lint
fuzz-targets: $(FUZZ_BIN)
fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz FUZZ=1 fuzz-targets

# Static analysis: clang-tidy with .clang-tidy, then cppcheck; both must be
# silent. cppcheck suppressions, each checked by hand:
#  varFuncNullUB   a NULL sentinel after variadic arguments: glibc's NULL is
#                  ((void *)0), the type the callee reads
#  ctuuninitvar    the records error struct is only written by cfr_rec_fail()
# The BPF programs are C for the BPF target (GNU C: libbpf's map macros), linted as such.
BPF_SRC := $(wildcard src/*/*.bpf.c)
LINT_SRC := $(filter-out $(BPF_SRC),$(wildcard src/*/*.c src/tools/*/*.c))
# Formatting: every C source and header as .clang-format has it (`make format`
# fixes it). Shell: every script, with the files it sources (-x); a finding
# that is deliberate gets a `# shellcheck disable=SCxxxx` with its reason.
# lint installs nothing: scripts/setup-deps does (CI runs it first).
FORMAT_SRC := $(wildcard include/cfr/*.h include/cfr/internal/*.h src/*/*.c src/*/*.h src/tools/*/*.c src/tools/*/*.h \
	tests/unit/*.c tests/unit/*.h tests/net/*.c tests/fuzz/*.c bench/*.c bench/*/*.c)
SHELL_SRC := $(wildcard lab/*.sh tests/net/*.sh) $(shell grep -lsE '^\#!/bin/(ba|da)?sh' \
	lab/* scripts/* contrib/bird/* bench/run bench/*/run tests/run tests/fuzz/* .ci/run)
# Python: the capture reader and its tests (tests/lib/), with pyflakes.
PY_SRC := $(wildcard tests/lib/*.py)
lint:
	clang-format --dry-run -Werror $(FORMAT_SRC)
	shellcheck -x $(SHELL_SRC)
	pyflakes3 $(PY_SRC)
	clang-tidy --quiet $(LINT_SRC) -- -std=c11 -D_GNU_SOURCE -Iinclude
	clang-tidy --quiet $(BPF_SRC) -- $(filter-out -O2 -g -Wall -Wextra -Werror,$(BPF_CFLAGS)) \
		-std=gnu11
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
		--inline-suppr --suppress=missingIncludeSystem --suppress=varFuncNullUB \
		--suppress=ctuuninitvar:src/records/format.c \
		-D_GNU_SOURCE -Iinclude -isrc/xdp/cfr_xdp.bpf.c -isrc/tc/cfr_tc.bpf.c src
	$(MAKE) --no-print-directory exports

check:
	tests/run

bench-engine: $(BUILD)/engine-bench
	bench/engine/run

demo:
	scripts/setup-deps
	$(MAKE) all
	$(MAKE) ech
	lab/demo

format:
	clang-format -i $(FORMAT_SRC)

clean:
	rm -rf build build-*

# Debian packages (debian/, docs/operations.md): built in a copy of the tree,
# so build/ is left alone; the .debs land in $(BUILD)/deb/.
.PHONY: deb
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	tar --exclude=./build --exclude='./build-*' --exclude=./.git -cf - . | tar -C $(BUILD)/deb/src -xf -
	cd $(BUILD)/deb/src && dpkg-buildpackage -b -us -uc
	lintian --fail-on error $(BUILD)/deb/*.changes

# ECH test peers (NSS), used by the lab's ECH scenario; not part of cfrd.
.PHONY: ech
ech:
	$(MAKE) -C lab/ech BUILD=$(abspath $(BUILD))/ech
