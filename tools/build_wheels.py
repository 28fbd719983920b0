#!/usr/bin/env python3
"""Builds the edge_runtime wheels for linux x86_64, aarch64 and armv7l (armhf) on an x86-64 host.

    python tools/build_wheels.py [--out dist] [--targets x86_64,aarch64,armv7l]

setuptools builds the x86_64 wheel as usual (from a scratch copy of the tree, so the checkout is
left alone). Each ARM wheel is that wheel with the extension swapped: native/*.c cross-compiled
with Debian's gcc-aarch64-linux-gnu / gcc-arm-linux-gnueabihf, using the flags setup.py declares,
against the target's own Python headers (pyconfig.h differs per architecture; they come from the
sysroot tools/arm_sysroot.sh unpacks). All kernels are in the one binary and chosen at run time
(aarch64: NEON baseline + dot-product when HWCAP says so; armv7: NEON when HWCAP says so).

Every extension is checked before it is packed: `file` must name the target architecture, it may
link only to glibc, and the manylinux tag is taken from the newest GLIBC_x.y symbol version it
needs, so the tag is true for the binary.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
EXT_PATH = "edge_runtime/_native.abi3.so"
# target -> (cross triplet, Debian multiarch dir of its Python headers, what `file` must say);
# x86_64 is the host: setuptools builds it with the host compiler and headers.
TARGETS = {
    "x86_64": (None, None, "x86-64"),
    "aarch64": ("aarch64-linux-gnu", "aarch64-linux-gnu", "ARM aarch64"),
    "armv7l": ("arm-linux-gnueabihf", "arm-linux-gnueabihf", "ARM, EABI5"),
}
# manylinux policy: an extension may need these system libraries and nothing else
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                  "ld-linux-aarch64.so.1", "ld-linux-armhf.so.3", "ld-linux-x86-64.so.2"}


class BuildError(RuntimeError):
    pass


def run(cmd, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, check=True, text=True, **kw)


def native_extension():
    """The Extension setup.py declares (sources, macros, flags), read without building it."""
    cwd = os.getcwd()
    os.chdir(ROOT)   # setup.py globs native/*.c relative to the working directory
    try:
        with mock.patch("setuptools.setup") as setup:
            runpy.run_path("setup.py")
    finally:
        os.chdir(cwd)
    (ext,) = setup.call_args.kwargs["ext_modules"]
    return ext


def cross_compile(target, sysroot, workdir):
    """Compile and link native/*.c for an ARM target; returns the .so path."""
    triplet, multiarch, _ = TARGETS[target]
    ext = native_extension()
    inc = Path(sysroot) / "usr/include"
    if not (inc / multiarch / "python3.11/pyconfig.h").is_file():
        raise BuildError(f"no {multiarch} Python headers under {inc}: run tools/arm_sysroot.sh {target}")
    # Debian's python3.11/pyconfig.h includes <{multiarch}/python3.11/pyconfig.h>: -idirafter finds
    # it there while the C library headers still come from the cross toolchain itself.
    flags = ["-fPIC", *ext.extra_compile_args, f"-I{inc / 'python3.11'}", f"-idirafter{inc}"]
    flags += [f"-I{ROOT / d}" for d in ext.include_dirs]
    flags += [f"-D{name}={value}" for name, value in ext.define_macros]
    cc = f"{triplet}-gcc"
    objs = []
    for src in ext.sources:
        obj = Path(workdir) / (Path(src).stem + ".o")
        run([cc, *flags, "-c", str(ROOT / src), "-o", str(obj)])
        objs.append(str(obj))
    so = Path(workdir) / "_native.abi3.so"
    run([cc, "-shared", "-Wl,--as-needed", *objs, *ext.extra_link_args, "-o", str(so)])
    return so


def strip(target, so):
    """Debug info is most of the file; boards have little storage."""
    triplet = TARGETS[target][0]
    run([f"{triplet}-strip" if triplet else "strip", "--strip-unneeded", str(so)])


def platform_tag(target, so):
    """manylinux_X_Y_<arch> from the newest glibc symbol version the extension needs."""
    triplet, _, file_says = TARGETS[target]
    desc = subprocess.run(["file", "-L", str(so)], check=True, capture_output=True, text=True).stdout
    if file_says not in desc or "shared object" not in desc:
        raise BuildError(f"{so} is not a {target} shared object: {desc.strip()}")
    objdump = f"{triplet}-objdump" if triplet else "objdump"
    needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(
        [objdump, "-p", str(so)], check=True, capture_output=True, text=True).stdout)
    if set(needed) - ALLOWED_NEEDED:
        raise BuildError(f"{so} links outside glibc: {sorted(set(needed) - ALLOWED_NEEDED)}")
    symbols = subprocess.run([objdump, "-T", str(so)], check=True, capture_output=True, text=True).stdout
    versions = {tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", symbols)}
    if not versions:
        raise BuildError(f"{so}: no GLIBC symbol versions found")
    major, minor = max(versions)
    print(f"{target}: {desc.split(':', 1)[1].strip()[:60]}... needs GLIBC_{major}.{minor}")
    return f"manylinux_{major}_{minor}_{target}"


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def repack(base_whl, so, plat, out_dir):
    """Copy of base_whl with the extension replaced and WHEEL/RECORD/file name carrying plat."""
    with zipfile.ZipFile(base_whl) as zin:
        names = zin.namelist()
        (record_name,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        if EXT_PATH not in names:
            raise BuildError(f"{base_whl} has no {EXT_PATH}")
        stem = Path(base_whl).name.split("-")
        # name-version-python-abi-platform.whl: only the platform part changes
        out = Path(out_dir) / ("-".join(stem[:4] + [plat]) + ".whl")
        record = ""
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                if info.filename == record_name:
                    continue
                data = zin.read(info)
                if info.filename == EXT_PATH:
                    data = Path(so).read_bytes()
                elif info.filename.endswith(".dist-info/WHEEL"):
                    data = re.sub(rb"(?m)^Tag: ([^-\s]+-[^-\s]+)-\S+$",
                                  rb"Tag: \1-" + plat.encode(), data)
                zout.writestr(info, data)
                record += record_line(info.filename, data)
            zout.writestr(zin.getinfo(record_name), record + f"{record_name},,\n")
    return out


def base_wheel(workdir):
    """setuptools' x86_64 wheel, built from a scratch copy so build/ and the tree stay untouched."""
    src = Path(workdir) / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".hypothesis", "tests", "docs"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(Path(workdir) / "base"), str(src)])
    (whl,) = (Path(workdir) / "base").glob("edge_runtime-*.whl")
    return whl


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "dist"), help="wheel directory (default: dist/)")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated: %(default)s")
    args = ap.parse_args(argv)
    targets = args.targets.split(",")
    unknown = set(targets) - set(TARGETS)
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    built = []
    with tempfile.TemporaryDirectory(prefix="er_wheels_") as tmp:
        base = base_wheel(tmp)
        for target in targets:
            work = Path(tmp) / target
            work.mkdir()
            if TARGETS[target][0] is None:
                with zipfile.ZipFile(base) as z:
                    so = work / "_native.abi3.so"
                    so.write_bytes(z.read(EXT_PATH))
            else:
                sysroot = subprocess.run([str(ROOT / "tools/arm_sysroot.sh"), target], check=True,
                                         stdout=subprocess.PIPE, text=True).stdout.strip()
                so = cross_compile(target, sysroot, work)
            strip(target, so)
            built.append(repack(base, so, platform_tag(target, so), args.out))
    for whl in built:
        print(f"{whl}  {whl.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    try:
        main()
    except (BuildError, subprocess.CalledProcessError) as e:
        sys.exit(f"build_wheels: {e}")
