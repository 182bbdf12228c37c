"""Build the compiled core: every ``arb_core/**/*.pyx`` becomes one extension module."""

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, PlatformError

NO_COMPILER = (
    "arb: building arb_core needs a C compiler and the Python headers "
    "(for example: apt-get install gcc python3-dev)"
)

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "embedsignature": True,
}


class BuildExtOrExplain(build_ext):
    """Turn a missing or broken C toolchain into one readable line."""

    def run(self) -> None:
        try:
            super().run()
        except (PlatformError, CCompilerError, CompileError, ExecError) as exc:
            raise SystemExit(f"{NO_COMPILER}: {exc}") from None

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except (CCompilerError, CompileError, ExecError) as exc:
            raise SystemExit(f"{NO_COMPILER}: {exc}") from None


def extensions():  # type: ignore[no-untyped-def]
    from Cython.Build import cythonize
    from setuptools import Extension

    directives = dict(DIRECTIVES)
    macros = []
    if os.environ.get("ARB_CYTHON_TRACE") == "1":
        directives["linetrace"] = True
        macros.append(("CYTHON_TRACE_NOGIL", "1"))
    # ARB_BUILD_ONLY=book,wire.gateio builds a subset while iterating on one module.
    only = {m for m in os.environ.get("ARB_BUILD_ONLY", "").split(",") if m}
    modules = []
    for pyx in sorted(Path("arb_core").rglob("*.pyx")):
        name = ".".join(pyx.with_suffix("").parts)
        if only and name.removeprefix("arb_core.") not in only:
            continue
        modules.append(
            Extension(
                name,
                [str(pyx)],
                extra_compile_args=["-O3"],
                define_macros=macros,
            )
        )
    return cythonize(
        modules,
        compiler_directives=directives,
        annotate=os.environ.get("ARB_CYTHON_ANNOTATE") == "1",
        nthreads=os.cpu_count() or 1,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtOrExplain})
