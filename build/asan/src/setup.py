"""Builds the C core as one abi3 extension (Python limited API, >= 3.9).

Every SIMD kernel lives in its own file and is compiled with function-level target
attributes, so a single binary carries all paths and picks one at run time.
"""
import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "edge_runtime._native",
            sources=sorted(glob.glob("native/*.c")),
            include_dirs=["native"],
            # headers and the per-ISA kernel templates: rebuild (and ship in the sdist) with them
            depends=sorted(glob.glob("native/*.h") + glob.glob("native/*.inc")),
            define_macros=[("Py_LIMITED_API", "0x03090000")],
            extra_compile_args=["-std=c11", "-O3", "-Wall", "-D_GNU_SOURCE", "-fno-math-errno"],
            extra_link_args=["-lpthread", "-lm"],
            py_limited_api=True,
        )
    ]
)
