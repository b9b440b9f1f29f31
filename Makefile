# milk: build, test, benchmark, demo. See README.md.
#
#   make            build/milk, build/libmilk.a, build/libmilk.so
#   make test       the whole suite (C unit tests under ASan+UBSan, pytest)
#   make bench      benchmarks (figures and ratios; not part of the tests)
#   make demo       install what is missing, build, convert and run the example
#   make deps       install the Debian packages milk needs (apt-get)

CC      ?= cc
# The sanitizer builds use both compilers: clang's UBSan also checks pointer
# overflow (NULL + 0), which gcc's does not by default.
CLANG   ?= clang
# Build directory; `make B=/tmp/b2` builds elsewhere (tests read MILK_BUILD).
B       ?= build
export MILK_BUILD := $(abspath $(B))
PYTHON  := /usr/bin/python3
CSTD    := -std=c11 -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
OPT     ?= -O2 -g
INC     := -Iinclude -I$(B)/gen -Isrc
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(INC) -fPIC -fvisibility=default
LIBS    := -lprotobuf-c -lcjson -lopenblas -lzip -lz -lm -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PROTOS  := $(wildcard proto/*.proto)
GEN_C   := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
GEN_H   := $(GEN_C:.c=.h)
SRC     := $(sort $(wildcard src/*/*.c))
TOOL    := $(sort $(wildcard tools/*.c))
UNIT    := $(sort $(wildcard tests/unit/test_*.c))

GEN_O    := $(patsubst proto/%.proto,gen/%.pb-c.o,$(PROTOS))
EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(sort $(wildcard examples/*.c)))
OBJ      := $(patsubst %.c,$(B)/obj/%.o,$(SRC)) $(addprefix $(B)/obj/,$(GEN_O))
# Sanitizer builds: $(B)/asan with $(CC), $(B)/casan with $(CLANG).
SANS     := asan casan
SAN_CC_asan  := $(CC)
SAN_CC_casan := $(CLANG)
UNIT_BIN := $(foreach s,$(SANS),$(patsubst tests/unit/%.c,$(B)/$(s)/tests/%,$(UNIT)))
# Helper programs the Python tests drive (optimized build, and an ASan one).
TTOOLS   := $(sort $(wildcard tests/tools/*.c))
TTOOL_BIN := $(patsubst tests/tools/%.c,$(B)/tools/%,$(TTOOLS)) \
             $(patsubst tests/tools/%.c,$(B)/asan/tools/%,$(TTOOLS))

.PHONY: all test unit pytest bench demo deps clean asan py-protos
.DELETE_ON_ERROR:
.SECONDARY: $(GEN_C) $(GEN_H)

all: $(B)/milk $(B)/libmilk.a $(B)/libmilk.so $(EXAMPLES) py-protos

$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -Iproto $<

# Python bindings of the same .proto files, for tests that decode what milk
# writes with Google's own protobuf implementation.
py-protos: $(B)/py/.stamp
$(B)/py/.stamp: $(PROTOS)
	@mkdir -p $(B)/py
	protoc --python_out=$(B)/py -Iproto $(PROTOS)
	@touch $@

# Generated protobuf code is compiled without -Werror: its warnings are not ours.
$(B)/obj/gen/%.o: $(B)/gen/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) $(CSTD) $(OPT) $(INC) -fPIC -c $< -o $@

$(B)/obj/%.o: %.c $(GEN_H) $(wildcard include/*.h src/*.h src/*/*.h src/*/*.def)
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/libmilk.a: $(OBJ)
	@rm -f $@
	@echo '  AR      $@'
	@ar rcs $@ $^

$(B)/libmilk.so: $(OBJ)
	@echo '  LD      $@'
	@$(CC) -shared -o $@ $^ $(LIBS)

$(B)/milk: $(TOOL) tools/cli.h $(B)/libmilk.a
	@echo '  LD      $@'
	@$(CC) $(CFLAGS_ALL) $(TOOL) $(B)/libmilk.a $(LIBS) -o $@

# One sanitizer build: $(1) its directory under $(B), $(2) its compiler.
define SANBUILD
$(B)/$(1)/obj/gen/%.o: $(B)/gen/%.c $(GEN_H)
	@mkdir -p $$(dir $$@)
	@echo '  CC $(1) $$<'
	@$(2) $(CSTD) -O1 -g $(SAN) $(INC) -fPIC -c $$< -o $$@
$(B)/$(1)/obj/%.o: %.c $(GEN_H) $(wildcard include/*.h src/*.h src/*/*.h src/*/*.def)
	@mkdir -p $$(dir $$@)
	@echo '  CC $(1) $$<'
	@$(2) $(CSTD) $(WARN) -O1 -g $(SAN) $(INC) -fPIC -c $$< -o $$@
$(B)/$(1)/libmilk.a: $(patsubst %.c,$(B)/$(1)/obj/%.o,$(SRC)) $(addprefix $(B)/$(1)/obj/,$(GEN_O))
	@rm -f $$@
	@echo '  AR      $$@'
	@ar rcs $$@ $$^
$(B)/$(1)/milk: $(TOOL) tools/cli.h $(B)/$(1)/libmilk.a
	@echo '  LD      $$@'
	@$(2) $(CSTD) $(WARN) -O1 -g $(SAN) $(INC) $(TOOL) $(B)/$(1)/libmilk.a $(LIBS) -o $$@
$(B)/$(1)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(B)/$(1)/libmilk.a
	@mkdir -p $$(dir $$@)
	@echo '  LD      $$@'
	@$(2) $(CSTD) $(WARN) -O1 -g $(SAN) $(INC) -Itests/unit $$< $(B)/$(1)/libmilk.a $(LIBS) -o $$@
endef
$(foreach s,$(SANS),$(eval $(call SANBUILD,$(s),$(SAN_CC_$(s)))))

# Examples see only the public header.
$(B)/examples/%: examples/%.c include/milk.h $(B)/libmilk.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CSTD) $(WARN) $(OPT) -Iinclude $< $(B)/libmilk.a $(LIBS) -o $@

$(B)/tools/%: tests/tools/%.c $(B)/libmilk.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CFLAGS_ALL) $< $(B)/libmilk.a $(LIBS) -o $@

$(B)/asan/tools/%: tests/tools/%.c $(B)/asan/libmilk.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CSTD) $(WARN) -O1 -g $(SAN) $(INC) $< $(B)/asan/libmilk.a $(LIBS) -o $@

asan: $(foreach s,$(SANS),$(B)/$(s)/milk) $(UNIT_BIN)

# Unit tests run under AddressSanitizer and UBSan (leaks included), built by
# both compilers.
unit: asan
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

pytest: all asan $(TTOOL_BIN)
	$(PYTHON) -m pytest -q tests

test: unit pytest

$(B)/bench/%: bench/%.c $(B)/libmilk.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CFLAGS_ALL) $< $(B)/libmilk.a $(LIBS) -o $@

bench: all $(B)/bench/bench_run
	$(PYTHON) bench/run.py

deps:
	@sh tools/install-deps.sh

demo: deps
	$(MAKE) all
	@sh examples/demo.sh

clean:
	rm -rf build
