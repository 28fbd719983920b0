#!/usr/bin/env bash
# Runs the test suite on emulated ARM CPUs against the cross-built wheel, on an x86 host:
# Debian's CPython 3.11 for the target (tools/arm_sysroot.sh) under qemu-user, with the wheel
# unpacked into the sysroot and on PYTHONPATH (never the source tree's x86 extension).
#
#   tools/emulated_tests.sh [--full] [--arch aarch64|armv7l|all] [--wheel-dir DIR]
#
# Default (CI): aarch64 wheel, kernel and tiny-model decoder tests, on Cortex-A53 (NEON) and
# Cortex-A76 (NEON + dot product). --full: the whole suite minus the `model` and `llama` tests.
# --arch armv7l|all adds the armhf wheel on Cortex-A7 (NEON). --wheel-dir: test the wheels
# found there instead of building them (tools/build_wheels.py) into a scratch directory.
# Needs (Debian): gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=(tests/test_kernels.py tests/test_decoder.py)
arches=(aarch64)
wheel_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        # /proc/self/statm under qemu-user is the emulator's (translation cache included), so the
        # fuzz run's RSS-creep bound measures qemu, not us: that one test runs natively only.
        --full) tests=(tests --deselect tests/test_fuzz_gguf.py::test_fuzz_bounded_run) ;;
        --arch) shift; case "${1:-}" in all) arches=(aarch64 armv7l) ;; *) arches=("${1:?}") ;; esac ;;
        --wheel-dir) shift; wheel_dir=${1:?} ;;
        *) sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
    esac
    shift
done

# CPU model and the kernels its HWCAPs must make the extension offer (so no NEON test is skipped).
declare -A cpus=(
    [aarch64]="cortex-a53:scalar,neon cortex-a76:scalar,neon,neon_dotprod"
    [armv7l]="cortex-a7:scalar,neon"
)
declare -A qemu=([aarch64]=qemu-aarch64-static [armv7l]=qemu-arm-static)

scratch=$(mktemp -d "${TMPDIR:-/tmp}/er_emulated.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if [ -z "$wheel_dir" ]; then
    wheel_dir=$scratch/dist
    targets=$(IFS=,; echo "${arches[*]}")
    python3 tools/build_wheels.py --targets "$targets" --out "$wheel_dir" >"$scratch/build.log" 2>&1 \
        || { cat "$scratch/build.log" >&2; exit 1; }
fi

# Tests find "the package" as their parent directory (subprocesses run with cwd or PYTHONPATH
# there): a copy of tests/ whose parent holds no edge_runtime leaves only the unpacked wheel.
cp -r tests pyproject.toml "$scratch/"

status=0
for arch in "${arches[@]}"; do
    [ -n "${cpus[$arch]:-}" ] || { echo "emulated_tests: unknown arch $arch" >&2; exit 2; }
    wheels=("$wheel_dir"/edge_runtime-*-manylinux_*_"$arch".whl)
    [ -f "${wheels[0]}" ] && [ ${#wheels[@]} -eq 1 ] \
        || { echo "emulated_tests: want exactly one $arch wheel in $wheel_dir" >&2; exit 1; }
    wheel=${wheels[0]}
    sysroot=$(tools/arm_sysroot.sh "$arch")
    # "Install": a wheel is laid out as site-packages; `wheel unpack` also checks RECORD's hashes.
    rm -rf "$sysroot/opt"
    python3 -m wheel unpack -d "$sysroot/opt" "$wheel" >/dev/null
    pkgs=$(echo "$sysroot"/opt/edge_runtime-*)
    file -L "$pkgs/edge_runtime/_native.abi3.so" | grep -q "$([ "$arch" = aarch64 ] && echo 'ARM aarch64' || echo 'ARM, EABI5')" \
        || { echo "emulated_tests: $wheel carries a non-$arch extension" >&2; exit 1; }

    # Tests start `sys.executable` subprocesses, which the host cannot exec without binfmt: make
    # sys.executable a host script that runs the interpreter under qemu (-0 sets the argv[0] the
    # guest sees, from which Python derives sys.executable). CPU and root travel in QEMU_* env.
    launcher=$sysroot/usr/bin/python3.11-qemu
    printf '#!/bin/sh\nexec %s -0 "$0" "${0%%-qemu}" "$@"\n' "${qemu[$arch]}" >"$launcher"
    chmod +x "$launcher"

    for spec in ${cpus[$arch]}; do
        cpu=${spec%%:*} want=${spec#*:}
        echo "== $(basename "$wheel") on qemu $cpu: ${tests[*]}"
        # -P: not even the working directory goes on sys.path; only the unpacked wheel can be found.
        py=(env QEMU_LD_PREFIX="$sysroot" QEMU_CPU="$cpu" PYTHONDONTWRITEBYTECODE=1
            PYTHONPATH="$pkgs:$sysroot/site-packages" "$launcher" -P)
        (cd "$scratch" && "${py[@]}" - "$wheel" "$pkgs" "$want") <<'EOF'
import sys
from pathlib import Path
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

wheel, pkgs, want = sys.argv[1:]
import edge_runtime
from edge_runtime import _native
assert Path(edge_runtime.__file__).is_relative_to(pkgs), f"imported {edge_runtime.__file__}"
_, _, _, tags = parse_wheel_filename(Path(wheel).name)
# packaging reads the interpreter's ELF header for armhf; sys.executable is the qemu launcher script
sys.executable = sys.executable.removesuffix("-qemu")
assert tags & set(sys_tags()), f"pip here would reject {Path(wheel).name}"
got = ",".join(_native.kernels())
assert got == want, f"kernels offered: {got}, expected {want}"
print(f"   {_native.__file__}: kernels {got}; wheel tag accepted by this interpreter")
EOF
        start=$SECONDS
        if (cd "$scratch" && "${py[@]}" -m pytest -q -p no:cacheprovider --continue-on-collection-errors \
                -m "not model and not llama" "${tests[@]}"); then
            echo "== $arch $cpu: passed in $((SECONDS - start)) s"
        else
            echo "== $arch $cpu: FAILED"
            status=1
        fi
    done
done
exit $status
