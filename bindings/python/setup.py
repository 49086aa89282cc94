"""Builds the libkotte extension (SWIG) for `pip install ./bindings/python`.

Where the libkotte C library comes from:
  * from this source tree (the default when ../../libkotte exists): its
    sources, listed by libkotte/*/sources.cmake, are compiled into the
    extension, so nothing needs installing first and the binding always
    matches the headers it was generated from;
  * from an installed libkotte (LIBKOTTE_USE_INSTALLED=1, or no source tree):
    found with `pkg-config kotte`.
External libraries (libuv, libsodium, libcjson, libpq) are found with
pkg-config; SWIG >= 4 must be on PATH (or in $SWIG).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
IN_TREE = (ROOT / "libkotte").is_dir() and (ROOT / "include" / "kotte.h").is_file()
USE_INSTALLED = os.environ.get("LIBKOTTE_USE_INSTALLED") == "1" or not IN_TREE
EXTERNAL = ["libuv", "libsodium", "libcjson", "libpq"]


def project_version() -> str:
    if IN_TREE:
        m = re.search(r"project\(kotte\s+VERSION\s+([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())
        if m:
            return m.group(1)
    out = subprocess.run(["pkg-config", "--modversion", "kotte"], capture_output=True, text=True)
    if out.returncode == 0:
        return out.stdout.strip()
    raise SystemExit("libkotte: cannot tell the version (no source tree, no `pkg-config kotte`)")


def pkg_config(*args: str) -> list[str]:
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit("libkotte: pkg-config is needed to find " + " ".join(args[1:]))
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"libkotte: pkg-config {' '.join(args)} failed: {e.stderr.strip()}")
    return out.stdout.split()


def library_sources() -> list[str]:
    """The C library's sources as its CMake fragments list them."""
    sources: list[str] = []
    for frag in sorted((ROOT / "libkotte").glob("*/sources.cmake")):
        sources += re.findall(r"(libkotte/[\w/.-]+\.c)", frag.read_text())
    return [str(ROOT / s) for s in sources]


VERSION = project_version()


class BuildExt(build_ext):
    """Runs SWIG into the package (capi.py) and the build directory (wrapper .c)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        # setuptools only compares source and object times, not headers: an
        # object left from an older tree could disagree with today's structs.
        self.force = True

    def build_extension(self, ext: Extension) -> None:
        swig = os.environ.get("SWIG") or shutil.which("swig4.0") or shutil.which("swig")
        if not swig:
            raise SystemExit("libkotte: SWIG >= 4 is needed (apt-get install swig)")
        gen = Path(self.build_temp) / "swig"
        gen.mkdir(parents=True, exist_ok=True)
        if self.inplace:
            pkg_dir = HERE / "libkotte"
        else:
            pkg_dir = Path(self.build_lib) / "libkotte"
        pkg_dir.mkdir(parents=True, exist_ok=True)
        wrapper = gen / "kotte_wrap.c"
        include_args = [f"-I{d}" for d in ext.include_dirs]
        subprocess.run([swig, "-python", "-threads", "-builtin", *include_args,
                        "-outdir", str(pkg_dir), "-o", str(wrapper), str(HERE / "kotte.i")],
                       check=True)
        ext.sources = [str(wrapper)] + [s for s in ext.sources if not s.endswith(".i")]
        # The C library's own sources live outside this directory, which
        # setuptools does not accept as extension sources: compile them here
        # and link the objects in.
        lib_sources = getattr(ext, "kotte_library_sources", [])
        if lib_sources:
            ext.extra_objects = self.compiler.compile(
                lib_sources, output_dir=str(Path(self.build_temp) / "libkotte-c"),
                macros=ext.define_macros, include_dirs=ext.include_dirs, debug=self.debug,
                extra_postargs=ext.extra_compile_args, depends=ext.depends)
        super().build_extension(ext)


def extension() -> Extension:
    include_dirs = [str(HERE / "src")]
    define_macros: list[tuple[str, str | None]] = [("_GNU_SOURCE", None)]
    extra_compile = ["-std=gnu11", "-fvisibility=hidden", "-Wno-unused-parameter",
                     "-Wno-missing-field-initializers", "-Wno-unused-function"]
    sources = ["kotte.i", "src/kpy_aio.c", "src/kpy_secret.c"]
    libs_flags: list[str] = []
    lib_sources: list[str] = []
    if USE_INSTALLED:
        flags = pkg_config("--cflags", "--libs", "kotte", *EXTERNAL)
    else:
        gen_inc = HERE / "build" / "generated" / "include"
        (gen_inc / "kotte").mkdir(parents=True, exist_ok=True)
        major, minor, patch = (VERSION.split(".") + ["0", "0"])[:3]
        text = (ROOT / "include" / "kotte" / "version.h.in").read_text()
        for k, v in {"PROJECT_VERSION_MAJOR": major, "PROJECT_VERSION_MINOR": minor,
                     "PROJECT_VERSION_PATCH": patch, "PROJECT_VERSION": VERSION}.items():
            text = text.replace(f"@{k}@", v)
        (gen_inc / "kotte" / "version.h").write_text(text)
        include_dirs += [str(ROOT / "include"), str(gen_inc), str(ROOT / "libkotte")]
        lib_sources = library_sources()
        flags = pkg_config("--cflags", "--libs", *EXTERNAL)
    for f in flags:
        if f.startswith("-I"):
            include_dirs.append(f[2:])
        else:
            libs_flags.append(f)
    ext = Extension("libkotte._capi", sources=sources, include_dirs=include_dirs,
                    define_macros=define_macros, extra_compile_args=extra_compile,
                    extra_link_args=libs_flags + ["-pthread"])
    ext.kotte_library_sources = lib_sources  # type: ignore[attr-defined]
    return ext


if sys.version_info < (3, 11):
    raise SystemExit("libkotte needs Python >= 3.11")

setup(version=VERSION, ext_modules=[extension()], cmdclass={"build_ext": BuildExt})
