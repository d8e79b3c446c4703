# simile - build, test, demo, bench. `make help` lists the targets.
CC      ?= cc
OPT     ?= -O3 -march=native
WARN    := -std=c11 -Wall -Wextra -Wpedantic -Werror
DEFS    := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
OMP     ?= -fopenmp
CFLAGS  := $(WARN) $(OPT) $(OMP) $(DEFS) -Iinclude -Isrc $(shell pkg-config --cflags cairo 2>/dev/null) -MMD -MP $(EXTRA_CFLAGS)
LDLIBS  := -lopenblas -ljansson -lpng -ljpeg -lsqlite3 -lcairo -lmicrohttpd -lz -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

B       := build
SRC     := $(wildcard src/*.c)
CLISRC  := $(wildcard cli/*.c)
TESTSRC := $(wildcard tests/test_*.c)
OBJ     := $(SRC:src/%.c=$(B)/obj/%.o)
ASOBJ   := $(SRC:src/%.c=$(B)/asan/obj/%.o)
TESTS   := $(TESTSRC:tests/%.c=$(B)/tests/%)
EXSRC   := $(wildcard examples/*.c)
EXAMPLES := $(EXSRC:examples/%.c=$(B)/examples/%)
ASEXAMPLES := $(EXSRC:examples/%.c=$(B)/asan/examples/%)
ASTESTS := $(TESTSRC:tests/%.c=$(B)/asan/tests/%)

.PHONY: all deps test test-run test-fast demo bench compare clean help fixtures
all: $(B)/libsimile.a $(B)/simile $(EXAMPLES)

help:
	@echo "make            build build/libsimile.a and build/simile"
	@echo "make deps       install the Debian packages simile needs (as root)"
	@echo "make test       build and run every test, then again under ASan+UBSan"
	@echo "make demo       train mnist-net + ArcFace on Fashion-MNIST and evaluate it"
	@echo "make bench      benchmark simile against PyTorch (if python3-torch is installed)"
	@echo "make compare    train every head and pair loss, write docs/results.md"
	@echo "make fixtures   regenerate tests/fixtures with PyTorch (tools/gen_ref.py)"

deps:
	@sh scripts/deps.sh

$(B)/obj/%.o: src/%.c | $(B)/obj
	$(CC) $(CFLAGS) -c $< -o $@
$(B)/asan/obj/%.o: src/%.c | $(B)/asan/obj
	$(CC) $(CFLAGS) -O1 $(SAN) -c $< -o $@

$(B)/libsimile.a: $(OBJ)
	ar rcs $@ $^
$(B)/asan/libsimile.a: $(ASOBJ)
	ar rcs $@ $^

$(B)/simile: $(CLISRC) $(B)/libsimile.a
	$(CC) $(CFLAGS) $(CLISRC) -o $@ $(B)/libsimile.a $(LDLIBS)
$(B)/asan/simile: $(CLISRC) $(B)/asan/libsimile.a
	$(CC) $(CFLAGS) -O1 $(SAN) $(CLISRC) -o $@ $(B)/asan/libsimile.a $(LDLIBS)

$(B)/tests/%: tests/%.c $(B)/libsimile.a | $(B)/tests
	$(CC) $(CFLAGS) $< -o $@ $(B)/libsimile.a $(LDLIBS)
$(B)/asan/tests/%: tests/%.c $(B)/asan/libsimile.a | $(B)/asan/tests
	$(CC) $(CFLAGS) -O1 $(SAN) $< -o $@ $(B)/asan/libsimile.a $(LDLIBS)

# The examples see the public header alone, in plain C11 (no feature macros,
# no src/): exactly what a program using the library has.
EXFLAGS := $(WARN) $(OPT) $(OMP) -Iinclude $(EXTRA_CFLAGS)
$(B)/examples/%: examples/%.c include/simile.h $(B)/libsimile.a | $(B)/examples
	$(CC) $(EXFLAGS) $< -o $@ $(B)/libsimile.a $(LDLIBS)
$(B)/asan/examples/%: examples/%.c include/simile.h $(B)/asan/libsimile.a | $(B)/asan/examples
	$(CC) $(EXFLAGS) -O1 $(SAN) $< -o $@ $(B)/asan/libsimile.a $(LDLIBS)

$(B)/obj $(B)/asan/obj $(B)/tests $(B)/asan/tests $(B)/examples $(B)/asan/examples:
	mkdir -p $@

SHTESTS := $(wildcard tests/test_*.sh)

# deps first, then a fresh make: flags from pkg-config are read after the
# packages exist (a fresh machine has no cairo.pc before scripts/deps.sh).
test: deps
	@$(MAKE) --no-print-directory test-run

# The third pass is a build without OpenMP (its pragmas ignored): the serial
# fallback must build and pass too.
NB      := $(B)/noomp
NOTESTS := $(TESTSRC:tests/%.c=$(NB)/tests/%)
test-run: $(TESTS) $(ASTESTS) $(B)/simile $(B)/asan/simile $(EXAMPLES) $(ASEXAMPLES)
	@$(MAKE) --no-print-directory B=$(NB) OMP= EXTRA_CFLAGS=-Wno-unknown-pragmas $(NB)/simile $(NOTESTS)
	@sh tests/run.sh $(TESTS) $(foreach t,$(SHTESTS),"SIMILE=$(B)/simile sh $(t)") \
	    -- $(ASTESTS) $(foreach t,$(SHTESTS),"SIMILE=$(B)/asan/simile sh $(t)") \
	    "--label=the same tests built without OpenMP" $(NOTESTS)

test-fast: $(TESTS) $(B)/simile $(EXAMPLES)
	@sh tests/run.sh $(TESTS) $(foreach t,$(SHTESTS),"SIMILE=$(B)/simile sh $(t)")

demo: deps
	@$(MAKE) --no-print-directory $(B)/simile
	@sh scripts/demo.sh

BENCHES := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))
$(B)/bench/%: bench/%.c $(B)/libsimile.a | $(B)/bench
	$(CC) $(CFLAGS) -Wno-unused-result $< -o $@ $(B)/libsimile.a $(LDLIBS)
$(B)/bench:
	mkdir -p $@

bench: $(B)/simile $(BENCHES)
	@sh bench/run.sh

compare: $(B)/simile
	@sh scripts/compare.sh

fixtures:
	/usr/bin/python3 tools/gen_ref.py tests/fixtures

clean:
	rm -rf $(B)

-include $(OBJ:.o=.d) $(ASOBJ:.o=.d)
