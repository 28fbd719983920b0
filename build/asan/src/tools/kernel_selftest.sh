#!/bin/sh
# Cross-builds tools/kernel_selftest.c with every Q8_0 kernel and runs it under emulated CPUs,
# so the ARM paths are checked on an x86 host. Needs (Debian): gcc-aarch64-linux-gnu
# gcc-arm-linux-gnueabihf qemu-user-static. Exits non-zero on any mismatch or missing kernel.
set -eu
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/er_kernel_selftest"
mkdir -p "$out"
SRC="tools/kernel_selftest.c native/q8_0.c native/q8_0_x86.c native/q8_0_arm.c"
CFLAGS="-std=c11 -O3 -D_GNU_SOURCE -fno-math-errno -Wall -Wextra -Werror -Inative"

run() {  # run <label> <command...>: the selftest's own arguments name the kernels that must be offered
    echo "== $1"; shift
    "$@"
}

# Host (x86-64): every kernel this CPU offers; under QEMU's AVX2-only x86 model as well.
cc $CFLAGS $SRC -lm -lpthread -o "$out/host"
run "host" "$out/host"
if [ "$(uname -m)" = x86_64 ] && command -v qemu-x86_64-static >/dev/null; then
    run "qemu x86-64 max model (avx2; TCG has no AVX-512)" qemu-x86_64-static -cpu max "$out/host" avx2
fi

# AArch64: Cortex-A53 has plain NEON only, Cortex-A76 has the dot-product extension.
aarch64-linux-gnu-gcc $CFLAGS $SRC -lm -lpthread -o "$out/aarch64"
A64="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
run "qemu cortex-a53 (neon)" $A64 -cpu cortex-a53 "$out/aarch64" neon
run "qemu cortex-a72 (neon)" $A64 -cpu cortex-a72 "$out/aarch64" neon
run "qemu cortex-a76 (neon, neon_dotprod)" $A64 -cpu cortex-a76 "$out/aarch64" neon neon_dotprod

# ARMv7 hard-float (Debian armhf baseline has no NEON; the kernel asks for it per function).
if command -v arm-linux-gnueabihf-gcc >/dev/null; then
    arm-linux-gnueabihf-gcc $CFLAGS $SRC -lm -lpthread -o "$out/armhf"
    A32="qemu-arm-static -L /usr/arm-linux-gnueabihf"
    run "qemu cortex-a7 (neon)" $A32 -cpu cortex-a7 "$out/armhf" neon
    # Cortex-R5F has VFP but no NEON: only the scalar kernel may be offered.
    echo "== qemu cortex-r5f (scalar only)"
    $A32 -cpu cortex-r5f "$out/armhf" >"$out/r5f.log"
    cat "$out/r5f.log"
    grep -qx "kernels: scalar" "$out/r5f.log"
fi
echo "kernel selftest: all passed"
