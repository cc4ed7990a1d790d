# SPDX-License-Identifier: GPL-2.0-or-later
# Thin wrapper around CMake so a fresh clone needs only `make test` / `make run`.
# scripts/setup.sh installs whatever Debian packages are missing first.
BUILD ?= build
SANITIZE_BUILD ?= build-sanitize
JOBS ?= $(shell nproc)

FUZZ_SECONDS ?= 600

.PHONY: all setup build debian-image test test-long test-all sanitize-build test-sanitize fuzz bench bench-debian run run-debian compare clean

all: build

setup:
	@scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

# The project, then the patched QEMU (cached outside the tree, keyed by a
# hash of its inputs) and the default guest (kernel + initramfs).
build: setup $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)
	scripts/build-qemu.sh $(BUILD)
	scripts/make-guest.sh $(BUILD)/guest

# The Debian 12 guest: a root disk from Debian's packages (mmdebstrap, as
# root), its kernel and initramfs, cached by a hash of the inputs.
debian-image: build
	scripts/make-debian-image.sh $(BUILD)/debian

# The tests: units, simulator, SPIN model, process tests, system tests that
# boot the guests across node processes (the busybox guest, and Debian 12
# on 2 nodes: hence the image, ~2 minutes the first time on an idle host);
# then the unit and simulator tests again under ASan+UBSan, and the fuzz
# targets for a minute each. All but the tests labelled long (test-long).
test: build debian-image
	cd $(BUILD) && ctest --output-on-failure -LE long
	$(MAKE) --no-print-directory test-sanitize

# The tests labelled long (the Debian guest on 4 nodes, a node killed
# during Debian's disk writes): 10-25 minutes each on a 2-core machine.
test-long: build debian-image
	cd $(BUILD) && ctest --output-on-failure -L long

# Everything: make test, then the long tests.
test-all: test test-long

# The sanitizer build uses clang, whose libFuzzer the fuzz_* targets need
# (tests/fuzz/); its tests are those labelled sanitize, fuzz_* included.
# DISCO_FUZZ_SECONDS: how long each fuzz_* test runs (60 in `make test`).
sanitize-build: setup
	cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DDISCO_SANITIZE=ON -DDISCO_FUZZ_SECONDS=$(or $(FUZZ_RUN_SECONDS),60)
	cmake --build $(SANITIZE_BUILD) -j $(JOBS)

test-sanitize: sanitize-build
	cd $(SANITIZE_BUILD) && ctest --output-on-failure -L sanitize

# The fuzz targets only, for FUZZ_SECONDS each (default 600).
fuzz:
	$(MAKE) --no-print-directory sanitize-build FUZZ_RUN_SECONDS=$(FUZZ_SECONDS)
	cd $(SANITIZE_BUILD) && ctest --output-on-failure -L fuzz

bench: build
	scripts/bench-dsm.sh $(BUILD)

# Boots the default guest across the two nodes of local-2node.yaml on this
# machine: a shell on a terminal, else the coherence check and a benchmark.
run: build
	scripts/run-vm.sh --build $(BUILD) cluster-config/examples/local-2node.yaml

# Debian 12 across the two nodes of debian-2node.yaml, root disk and network
# on the master: a login prompt on a terminal, else checks through ssh.
run-debian: debian-image
	scripts/run-debian.sh --build $(BUILD) cluster-config/examples/debian-2node.yaml

# Debian on one QEMU process against 2 nodes: boot, disk and network ratios.
bench-debian: debian-image
	scripts/bench-debian.sh $(BUILD)

# The guest workloads (boot, NUMA-local, read-shared, write-shared,
# misplaced, xz) on one QEMU process and on the cluster with the static and
# the disco policy, side by side: build/compare/compare.{md,csv,png,svg}.
compare: build
	scripts/disco compare --build $(BUILD) --out $(BUILD)/compare

# The programs, the patched QEMU (PREFIX/lib/disco), discod's systemd unit,
# bash completion and the documentation under PREFIX (DESTDIR for staging):
# docs/deploy.md.
PREFIX ?= /usr/local
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# The Debian package, $(BUILD)/disco_<version>_<arch>.deb (scripts/make-deb.sh):
# `apt install ./disco_*.deb` on a Debian 12 machine.
deb: build
	scripts/make-deb.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD)
