# Culvert: self-hostable tunnel. `make` builds build/culvert-edge and build/culvert-connector;
# `make test` installs what is missing, builds, and runs every test; `make demo` runs a local trial.
#
# Layout: objects in build/obj (plain) and build/asan/obj (SANITIZE=1), never mixed. llhttp is
# compiled from Debian's node-llhttp sources into $(B)/libllhttp.a without our warnings.

SANITIZE ?= 0
V ?= 0
CC ?= cc
PYTHON ?= /usr/bin/python3
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp

ifeq ($(SANITIZE),1)
B := build/asan
OPT := -O1
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
B := build
OPT := -O2
SAN :=
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wcast-qual -Wwrite-strings -Wformat=2 -Wundef -Wvla -Werror
BASE := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -D_GNU_SOURCE -g -MMD -MP \
        -iquote common -I$(LLHTTP_INC)
LIBS := -luv -lssl -lcrypto -lyaml -lpcre2-8 -lm

# Debian packages that building and testing need; `make deps` installs the missing ones.
DEPS := gcc make libc6-dev pkg-config libssl-dev libuv1-dev libyaml-dev libcmocka-dev node-llhttp \
        libpcre2-dev curl openssl ca-certificates python3 procps iproute2 openssh-server \
        openssh-client netcat-openbsd python3-yaml nftables nginx haproxy

COMMON_SRC := $(sort $(wildcard common/*.c))
EDGE_SRC := $(sort $(filter-out edge/main.c,$(wildcard edge/*.c)))
CONN_SRC := $(sort $(filter-out connector/main.c,$(wildcard connector/*.c)))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/obj/%.o)
EDGE_OBJ := $(EDGE_SRC:%.c=$(B)/obj/%.o)
CONN_OBJ := $(CONN_SRC:%.c=$(B)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(B)/tools/%)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz-replay/%)
LLHTTP_OBJ := $(B)/obj/llhttp/api.o $(B)/obj/llhttp/http.o $(B)/obj/llhttp/llhttp.o

LIBCOMMON := $(B)/libcommon.a
LIBEDGE := $(B)/libedge.a
LIBCONN := $(B)/libconnector.a
LIBLLHTTP := $(B)/libllhttp.a

EDGE_BIN := $(B)/culvert-edge
CONN_BIN := $(B)/culvert-connector

.PHONY: all deps test unit integration build-tests fuzz fuzz-replay demo bench soak clean tools install \
        image container-check
.DEFAULT_GOAL := all

all: $(EDGE_BIN) $(CONN_BIN) $(TOOL_BIN)

# ---- objects ----------------------------------------------------------------------------------

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@if [ "$(V)" != 1 ]; then echo "  CC      $<"; fi
	$(Q)$(CC) $(BASE) $(OPT) $(SAN) $(WARN) $(CFLAGS) -c -o $@ $<

$(B)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	@if [ "$(V)" != 1 ]; then echo "  CC      llhttp/$*.c"; fi
	$(Q)$(CC) -std=c11 -O2 -g $(SAN) -I$(LLHTTP_INC) -w -c -o $@ $<

$(LIBLLHTTP): $(LLHTTP_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBCOMMON): $(COMMON_OBJ)
	@if [ "$(V)" != 1 ]; then echo "  AR      $@"; fi
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBEDGE): $(EDGE_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBCONN): $(CONN_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

# ---- programs ---------------------------------------------------------------------------------

$(EDGE_BIN): $(B)/obj/edge/main.o $(LIBEDGE) $(LIBCOMMON) $(LIBLLHTTP)
	@if [ "$(V)" != 1 ]; then echo "  LD      $@"; fi
	$(Q)$(CC) $(SAN) -o $@ $^ $(LIBS) $(LDFLAGS)

$(CONN_BIN): $(B)/obj/connector/main.o $(LIBCONN) $(LIBCOMMON) $(LIBLLHTTP)
	@if [ "$(V)" != 1 ]; then echo "  LD      $@"; fi
	$(Q)$(CC) $(SAN) -o $@ $^ $(LIBS) $(LDFLAGS)

tools: $(TOOL_BIN)

$(B)/tools/%: tests/tools/%.c $(LIBCOMMON) $(LIBLLHTTP)
	@mkdir -p $(dir $@)
	@if [ "$(V)" != 1 ]; then echo "  CC      $<"; fi
	$(Q)$(CC) $(BASE) $(OPT) $(SAN) $(WARN) $(CFLAGS) -o $@ $< $(LIBCOMMON) $(LIBLLHTTP) $(LIBS)

# ---- unit tests (cmocka) ----------------------------------------------------------------------

$(B)/obj/tests/unit/support.o: tests/unit/support.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(BASE) $(OPT) $(SAN) $(WARN) -iquote tests/unit -iquote edge -iquote connector -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(B)/obj/tests/unit/support.o $(LIBEDGE) $(LIBCONN) $(LIBCOMMON) $(LIBLLHTTP)
	@mkdir -p $(dir $@)
	@if [ "$(V)" != 1 ]; then echo "  CC      $<"; fi
	$(Q)$(CC) $(BASE) $(OPT) $(SAN) $(WARN) -Wno-missing-prototypes -iquote tests/unit -iquote edge -iquote connector \
		$(CFLAGS) -o $@ $< $(B)/obj/tests/unit/support.o $(LIBEDGE) $(LIBCONN) $(LIBCOMMON) \
		$(LIBLLHTTP) -lcmocka $(LIBS)

unit: $(UNIT_BIN) fuzz-replay
	@fail=0; for t in $(UNIT_BIN); do \
		echo "== $$t"; \
		( cd tests/unit && ../../$$t ) || fail=1; \
	done; \
	for f in $(FUZZ_REPLAY); do \
		name=$$(basename $$f | sed 's/^fuzz_//'); \
		echo "== $$f tests/fuzz/corpus/$$name"; \
		$$f tests/fuzz/corpus/$$name || fail=1; \
	done; exit $$fail

# ---- fuzz targets: replay of the seed corpora in `make test`, libFuzzer with `make fuzz` -------

fuzz-replay: $(FUZZ_REPLAY)

$(B)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay.c $(LIBEDGE) $(LIBCONN) $(LIBCOMMON) $(LIBLLHTTP)
	@mkdir -p $(dir $@)
	@if [ "$(V)" != 1 ]; then echo "  CC      $< (replay)"; fi
	$(Q)$(CC) $(BASE) $(OPT) $(SAN) $(WARN) -Wno-missing-prototypes -iquote edge -iquote connector -o $@ $< \
		tests/fuzz/replay.c $(LIBEDGE) $(LIBCONN) $(LIBCOMMON) $(LIBLLHTTP) $(LIBS)

FUZZ_CC ?= clang-14
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1
FUZZ_SECONDS ?= 60
fuzz:
	@command -v $(FUZZ_CC) >/dev/null || $(MAKE) deps DEPS="clang-14 libclang-rt-14-dev"
	$(Q)mkdir -p build/fuzz
	$(Q)for src in $(FUZZ_SRC); do \
		name=$$(basename $$src .c); \
		echo "  FUZZ    $$name"; \
		$(FUZZ_CC) $(FUZZ_FLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -D_GNU_SOURCE \
			-iquote common -iquote edge -iquote connector -I$(LLHTTP_INC) -o build/fuzz/$$name $$src \
			$(COMMON_SRC) $(EDGE_SRC) $(CONN_SRC) $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c \
			$(LLHTTP_SRC)/llhttp.c $(LIBS) || exit 1; \
	done
	@echo "fuzzers in build/fuzz; run e.g.: build/fuzz/fuzz_frame -max_total_time=$(FUZZ_SECONDS) tests/fuzz/corpus/frame"

# ---- integration tests ------------------------------------------------------------------------

integration: all
	$(PYTHON) tests/integration/run.py --build $(B) $(if $(filter 1,$(SANITIZE)),--reduced,)

# `make soak [SOAK_MINUTES=120]`: RELIABILITY.md T-40, mixed load with connector restarts for that
# long, then checks that nothing grew or leaked (tests/integration/test_soak.py). Not in `make test`.
SOAK_MINUTES ?= 120
soak: deps all
	CULVERT_SOAK_MINUTES=$(SOAK_MINUTES) $(PYTHON) tests/integration/run.py --build $(B) --keep -k test_soak.; \
	rc=$$?; grep -h " soak .* min: " $(B)/itest/test_soak.*/test.notes | cut -d' ' -f2-; exit $$rc

# Everything the tests run, built in parallel.
build-tests: all $(UNIT_BIN) $(FUZZ_REPLAY)

# `make test`: deps, plain build + unit + integration, then the ASan+UBSan build + unit + reduced
# integration (small bodies, no long waits). Tests run one at a time. The sanitizer build runs at
# nice 19 while the plain tests run: it takes the CPU they leave idle (most of them wait for
# timeouts), and any time it wants they get first. Its log is printed when it is done.
test: deps
	$(MAKE) --no-print-directory -j2 build-tests
	@mkdir -p build; \
	nice -n 19 $(MAKE) --no-print-directory SANITIZE=1 -j2 build-tests >build/asan-build.log 2>&1 & asan=$$!; \
	$(MAKE) --no-print-directory unit integration; rc=$$?; \
	wait $$asan; arc=$$?; \
	echo "== sanitizer build (ran alongside the plain tests), exit $$arc"; cat build/asan-build.log; \
	[ $$rc -eq 0 ] && [ $$arc -eq 0 ]
	$(MAKE) --no-print-directory SANITIZE=1 unit integration

# ---- demo -------------------------------------------------------------------------------------

demo: deps all
	$(Q)sh tests/demo.sh $(B)

bench: deps all
	$(Q)sh bench/run.sh

# ---- dependencies ------------------------------------------------------------------------------

deps:
	@sh tests/tools/apt-install.sh make $(DEPS)

# ---- installing --------------------------------------------------------------------------------

# `make install [PREFIX=/usr/local] [DESTDIR=]`: the two programs, the systemd units (pointing at
# PREFIX/bin; systemd reads PREFIX/lib/systemd/system when PREFIX is /usr/local or /usr) and the
# example configurations. Nothing under /etc is touched: configs and tokens are the user's.
PREFIX ?= /usr/local
DESTDIR ?=
UNITDIR ?= $(PREFIX)/lib/systemd/system

install: $(EDGE_BIN) $(CONN_BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/share/doc/culvert
	install -m 0755 $(EDGE_BIN) $(CONN_BIN) $(DESTDIR)$(PREFIX)/bin/
	for u in culvert-edge culvert-connector; do \
		sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' deploy/$$u.service > $(DESTDIR)$(UNITDIR)/$$u.service && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.service || exit 1; \
	done
	install -m 0644 deploy/edge.yml.example deploy/config.yml.example $(DESTDIR)$(PREFIX)/share/doc/culvert/

# Container images from deploy/Containerfile (needs docker or podman; not part of `make test`), and
# an end-to-end check of them: an edge container and a connector container carry a request.
CONTAINER ?= $(shell command -v docker || command -v podman)

image:
	$(CONTAINER) build -f deploy/Containerfile --target edge -t culvert-edge .
	$(CONTAINER) build -f deploy/Containerfile --target connector -t culvert-connector .

container-check: image
	CONTAINER=$(CONTAINER) sh deploy/container-check.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
