# lguest: build, test and benchmark.
#
#   make            build ./lguest
#   make check      every test: unit (plain and ASan/UBSan), fuzz smoke,
#                   command-line errors, and end-to-end guest boots
#   make bench      the benchmark table
#   make asan       ./build-asan/lguest with AddressSanitizer + UBSan
#   make fuzz       libFuzzer targets in build-fuzz/

CC      ?= gcc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CPPFLAGS:= -D_GNU_SOURCE -Isrc -MMD -MP
LIBS    := -luring -lzstd -llzma -lz -lxxhash -lpthread

SRCS    := $(sort $(wildcard src/*.c src/*/*.c))
MAIN    := src/main.c
# Unit tests link everything except main() and the KVM layer; the files in
# tests/unit/ that are not test_*.c (stubs, harnesses) stand in for the VM.
LIBSRCS := $(filter-out $(MAIN) src/vm/%,$(SRCS))
TSRCS   := $(sort $(wildcard tests/unit/test_*.c))
STUBS   := $(filter-out $(TSRCS),$(sort $(wildcard tests/unit/*.c)))

.PHONY: all check unit asan bench fuzz clean install
# Keep the objects of every build: they are not throw-away intermediates.
.SECONDARY:

all: lguest

# --- plain build -----------------------------------------------------------
B := build
OBJS  = $(SRCS:%.c=$(B)/%.o)
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c $< -o $@

# Linked statically: no dynamic loader at start-up (about half a
# millisecond of our start cost) and one file to copy into test machines.
lguest: $(SRCS:%.c=$(B)/%.o)
	$(CC) $(CFLAGS) -static -o $@ $^ $(LIBS)

$(B)/tests/%: tests/unit/%.c $(LIBSRCS:%.c=$(B)/%.o) $(STUBS:%.c=$(B)/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(WARN) -o $@ $(filter %.c %.o,$^) $(LIBS)

unit: $(TSRCS:tests/unit/%.c=$(B)/tests/%)

# --- AddressSanitizer + UBSan ------------------------------------------------
A := build-asan
ASAN := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
$(A)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(ASAN) $(WARN) -c $< -o $@

$(A)/lguest: $(SRCS:%.c=$(A)/%.o)
	$(CC) $(ASAN) -o $@ $^ $(LIBS)

$(A)/tests/%: tests/unit/%.c $(LIBSRCS:%.c=$(A)/%.o) $(STUBS:%.c=$(A)/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(ASAN) $(WARN) -o $@ $(filter %.c %.o,$^) $(LIBS)

asan: $(A)/lguest $(TSRCS:tests/unit/%.c=$(A)/tests/%)

# --- libFuzzer ---------------------------------------------------------------
F := build-fuzz
FUZZ := -O1 -g -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
FSRCS := $(sort $(wildcard fuzz/fuzz_*.c))
$(F)/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -Itests/unit -O1 -g -fsanitize=fuzzer-no-link,address,undefined $(WARN) -c $< -o $@

$(F)/%: fuzz/%.c $(LIBSRCS:%.c=$(F)/%.o) $(STUBS:%.c=$(F)/%.o)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -Itests/unit $(FUZZ) $(WARN) -o $@ $(filter %.c %.o,$^) $(LIBS)

fuzz: $(FSRCS:fuzz/%.c=$(F)/%)

# --- the README's test command ----------------------------------------------
# One prove run: every line of output is TAP, the last line prove's summary.
check: lguest unit asan fuzz
	prove --exec '' --merge $(TSRCS:tests/unit/%.c=$(B)/tests/%) \
		$(TSRCS:tests/unit/%.c=$(A)/tests/%) tests/fuzz.t tests/cli.t tests/tty.t tests/e2e.t

bench: lguest
	bench/run

clean:
	rm -rf $(B) $(A) $(F) lguest

PREFIX ?= /usr/local
install: lguest
	install -D -m 755 lguest $(DESTDIR)$(PREFIX)/bin/lguest
	install -D -m 644 doc/lguest.1 $(DESTDIR)$(PREFIX)/share/man/man1/lguest.1

-include $(shell find $(B) $(A) $(F) -name '*.d' 2>/dev/null)
