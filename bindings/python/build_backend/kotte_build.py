"""The PEP 517 build backend of ``pip install ./bindings/python``.

In-tree and self-contained (``requires = []``): it needs only the target
interpreter (with its headers), a C compiler, SWIG >= 4 and pkg-config, so
the same command works for Debian's python3 and for any CPython >= 3.11,
with or without a package index, with or without build isolation.

Where the libkotte C library comes from:
  * this source tree (default, when ../../libkotte exists): its sources, as
    libkotte/*/sources.cmake list them, are compiled into the extension, so
    nothing needs installing first and the binding always matches the
    headers SWIG read;
  * an installed libkotte (LIBKOTTE_USE_INSTALLED=1, or no source tree),
    found with ``pkg-config kotte``.
External libraries (libuv, libsodium, libcjson, libpq) come from pkg-config.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # bindings/python
ROOT = HERE.parent.parent
NAME = "libkotte"
EXTERNAL = ["libuv", "libsodium", "libcjson", "libpq"]
SUMMARY = ("Shared session and credential stores for Kotte (SWIG binding of the libkotte C "
           "library), with a drop-in for Kotte's FastAPI backend")


def _in_tree() -> bool:
    return (ROOT / "libkotte").is_dir() and (ROOT / "include" / "kotte.h").is_file()


def _use_installed() -> bool:
    return os.environ.get("LIBKOTTE_USE_INSTALLED") == "1" or not _in_tree()


def _run(cmd: list[str], **kw) -> str:
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout
    except FileNotFoundError:
        raise SystemExit(f"libkotte build: {cmd[0]} is needed") from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"libkotte build: {shlex.join(cmd)} failed:\n{e.stdout}{e.stderr}") from None


def version() -> str:
    if not _use_installed():
        m = re.search(r"project\(kotte\s+VERSION\s+([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())
        if m:
            return m.group(1)
    return _run(["pkg-config", "--modversion", "kotte"]).strip()


def _library_sources() -> list[Path]:
    out: list[Path] = []
    for frag in sorted((ROOT / "libkotte").glob("*/sources.cmake")):
        out += [ROOT / s for s in re.findall(r"(libkotte/[\w/.-]+\.c)", frag.read_text())]
    return out


def _metadata(ver: str) -> str:
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {ver}\nSummary: {SUMMARY}\n"
            "Requires-Python: >=3.11\nClassifier: Programming Language :: Python :: 3\n"
            "Classifier: Programming Language :: C\nClassifier: Framework :: AsyncIO\n"
            "Classifier: Operating System :: POSIX :: Linux\n")


ENTRY_POINTS = "[console_scripts]\nlibkotte-kotte = libkotte.kotte.__main__:main\n"


def _tag() -> str:
    impl = f"cp{sys.version_info.major}{sys.version_info.minor}"
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{impl}-{impl}-{plat}"


def _compile_extension(work: Path, pkg_out: Path) -> Path:
    """SWIG + C compiler; returns the built extension module."""
    swig = os.environ.get("SWIG") or shutil.which("swig4.0") or shutil.which("swig")
    if not swig:
        raise SystemExit("libkotte build: SWIG >= 4 is needed (apt-get install swig)")
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    ldshared = shlex.split(os.environ.get("LDSHARED") or sysconfig.get_config_var("LDSHARED")
                           or "cc -shared")
    inc = [str(HERE / "src"), sysconfig.get_paths()["include"]]
    sources = [HERE / "src" / "kpy_aio.c"]
    if _use_installed():
        flags = _run(["pkg-config", "--cflags", "--libs", "kotte", *EXTERNAL]).split()
        libdir = _run(["pkg-config", "--variable=libdir", "kotte"]).strip()
        if libdir:
            flags.append(f"-Wl,-rpath,{libdir}")
    else:
        gen = work / "include"
        (gen / "kotte").mkdir(parents=True, exist_ok=True)
        ver = version()
        major, minor, patch = (ver.split(".") + ["0", "0"])[:3]
        text = (ROOT / "include" / "kotte" / "version.h.in").read_text()
        for k, v in {"PROJECT_VERSION_MAJOR": major, "PROJECT_VERSION_MINOR": minor,
                     "PROJECT_VERSION_PATCH": patch, "PROJECT_VERSION": ver}.items():
            text = text.replace(f"@{k}@", v)
        (gen / "kotte" / "version.h").write_text(text)
        inc += [str(ROOT / "include"), str(gen), str(ROOT / "libkotte")]
        sources += _library_sources()
        flags = _run(["pkg-config", "--cflags", "--libs", *EXTERNAL]).split()
    inc += [f[2:] for f in flags if f.startswith("-I")]
    libs = [f for f in flags if not f.startswith("-I")]
    wrapper = work / "kotte_wrap.c"
    _run([swig, "-python", "-threads", "-builtin", *[f"-I{d}" for d in inc], "-outdir",
          str(pkg_out), "-o", str(wrapper), str(HERE / "kotte.i")])
    sources.insert(0, wrapper)
    cflags = ["-O2", "-g0", "-fPIC", "-std=gnu11", "-fvisibility=hidden", "-D_GNU_SOURCE",
              "-DNDEBUG", "-Wno-unused-parameter", "-Wno-unused-function"]
    cflags += shlex.split(sysconfig.get_config_var("CCSHARED") or "")

    def compile_one(i_src: tuple[int, Path]) -> Path:
        i, src = i_src
        obj = work / "obj" / f"{i:03d}_{src.stem}.o"
        obj.parent.mkdir(parents=True, exist_ok=True)
        _run([*cc, *cflags, *[f"-I{d}" for d in inc], "-c", str(src), "-o", str(obj)])
        return obj

    jobs = int(os.environ.get("LIBKOTTE_BUILD_JOBS") or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        objs = list(ex.map(compile_one, enumerate(sources)))
    ext = pkg_out / f"_capi{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
    _run([*ldshared, *[str(o) for o in objs], "-o", str(ext), *libs, "-pthread"])
    return ext


def _record_line(arc: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arc},sha256={digest},{len(data)}"


# ---- PEP 517 hooks -----------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings=None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None) -> str:
    dist_info = Path(metadata_directory) / f"{NAME}-{version()}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(_metadata(version()))
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    return dist_info.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    if sys.version_info < (3, 11):
        raise SystemExit("libkotte needs Python >= 3.11")
    ver = version()
    tag = _tag()
    with tempfile.TemporaryDirectory(prefix="libkotte-build-") as tmp:
        work = Path(tmp)
        gen_pkg = work / "gen"
        gen_pkg.mkdir()
        _compile_extension(work, gen_pkg)
        files: dict[str, bytes] = {}
        for path in sorted((HERE / NAME).rglob("*")):
            rel = path.relative_to(HERE).as_posix()
            if path.is_file() and "__pycache__" not in rel and not rel.endswith((".so", ".pyc")) \
                    and rel != f"{NAME}/capi.py":
                files[rel] = path.read_bytes()
        for path in gen_pkg.iterdir():
            files[f"{NAME}/{path.name}"] = path.read_bytes()
        dist_info = f"{NAME}-{ver}.dist-info"
        files[f"{dist_info}/METADATA"] = _metadata(ver).encode()
        files[f"{dist_info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: kotte_build\n"
                                       f"Root-Is-Purelib: false\nTag: {tag}\n").encode()
        files[f"{dist_info}/entry_points.txt"] = ENTRY_POINTS.encode()
        record = [_record_line(a, d) for a, d in files.items()]
        record.append(f"{dist_info}/RECORD,,")
        files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
        name = f"{NAME}-{ver}-{tag}.whl"
        with zipfile.ZipFile(Path(wheel_directory) / name, "w", zipfile.ZIP_DEFLATED) as z:
            for arc, data in files.items():
                info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if arc.endswith(".so") else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
    return name
