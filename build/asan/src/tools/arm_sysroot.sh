#!/usr/bin/env bash
# Builds (once, cached outside the repo) an ARM Linux root holding Debian bookworm's CPython 3.11,
# its headers (for cross-building the extension) and the test dependencies, for running the test
# suite under qemu-user on an x86 host. Prints the root's path on stdout; logs go to stderr.
#
#   tools/arm_sysroot.sh aarch64|armv7l
#
# aarch64: numpy, psutil, pytest, gguf, hypothesis from PyPI's manylinux aarch64 wheels (what a
# board's `pip install` gets). armv7l: PyPI has no armv7l numpy/psutil wheels, so those and the
# other test tools come from Debian armhf packages; only gguf (pure Python) comes from PyPI.
# Needs: apt-get and dpkg (Debian/Ubuntu host), network. No root privileges, no system apt state
# is touched: apt runs with a private state directory.
set -euo pipefail

case "${1:-}" in
    aarch64) deb_arch=arm64 qemu=qemu-aarch64-static ;;
    armv7l)  deb_arch=armhf qemu=qemu-arm-static ;;
    *) echo "usage: $0 aarch64|armv7l" >&2; exit 2 ;;
esac
arch=$1
cache="${EDGE_RUNTIME_CI_CACHE:-$HOME/.cache/edge_runtime_ci}"
root="$cache/sysroot-$arch"
site="$root/site-packages"   # pip --target for the PyPI parts; callers put it on PYTHONPATH

debs=(python3.11-minimal libpython3.11-stdlib libpython3.11-dev)
pypi=(numpy psutil pytest gguf hypothesis)
if [ "$arch" = armv7l ]; then
    debs+=(python3-numpy python3-psutil python3-yaml python3-tqdm python3-pytest python3-hypothesis)
    pypi=(gguf)
fi
# The stamp records what the root was built from: a changed list rebuilds it.
stamp="$deb_arch: ${debs[*]} | pypi: ${pypi[*]}"
if [ -f "$root/.complete" ] && [ "$(cat "$root/.complete")" = "$stamp" ]; then
    echo "$root"
    exit 0
fi

apt_dir="$cache/apt-$deb_arch"
mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/prefs"
: >"$apt_dir/state/status"   # empty: resolve every dependency, as for a bare root
apt_opts=(
    -o "Dir::State=$apt_dir/state" -o "Dir::State::status=$apt_dir/state/status"
    -o "Dir::Cache=$apt_dir/cache" -o "Dir::Etc::PreferencesParts=$apt_dir/prefs"
    -o Dir::Etc::Preferences=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    -o "APT::Architecture=$deb_arch" -o "APT::Architectures::=$deb_arch"
)
echo "arm_sysroot: fetching Debian $deb_arch packages" >&2
# A mirror mid-sync can fail one index (seen: bookworm-security armhf); the others still resolve,
# and a package that really is missing fails the install below.
apt-get "${apt_opts[@]}" update -qq >&2 || echo "arm_sysroot: some indexes failed; going on" >&2
apt-get "${apt_opts[@]}" clean   # only this list's packages get unpacked below
apt-get "${apt_opts[@]}" install -qq -y --download-only --no-install-recommends "${debs[@]}" >&2

rm -rf "$root"
mkdir -p "$root"
for deb in "$apt_dir"/cache/archives/*_"$deb_arch".deb "$apt_dir"/cache/archives/*_all.deb; do
    [ -e "$deb" ] && dpkg-deb -x "$deb" "$root"
done
# dpkg -x runs no maintainer scripts: make the links update-alternatives would (libblas.so.3, ...).
for lib in "$root"/usr/lib/*/blas/lib*.so.* "$root"/usr/lib/*/lapack/lib*.so.*; do
    [ -e "$lib" ] && ln -sf "$(basename "$(dirname "$lib")")/$(basename "$lib")" "$(dirname "$(dirname "$lib")")/"
done
[ -x "$root/usr/bin/python3.11" ] || { echo "arm_sysroot: no python3.11 in $root" >&2; exit 1; }

echo "arm_sysroot: installing from PyPI: ${pypi[*]}" >&2
if [ "$arch" = aarch64 ]; then
    python3 -m pip install -q --target "$site" --only-binary=:all: --platform manylinux2014_aarch64 \
        --python-version 3.11 --implementation cp "${pypi[@]}" >&2
else  # pure-Python only; its dependencies are the Debian packages above
    python3 -m pip install -q --target "$site" --no-deps "${pypi[@]}" >&2
fi
# Debian compiles bytecode in postinst, which dpkg -x skips: compile once here with the target's
# own interpreter, or every emulated start recompiles the stdlib it imports.
"$qemu" -L "$root" "$root/usr/bin/python3.11" -m compileall -q -j0 \
    "$root/usr/lib/python3.11" "$root/usr/lib/python3" "$site" >/dev/null
echo "$stamp" >"$root/.complete"
echo "$root"
