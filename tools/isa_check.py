"""Static check of the convolution's register tile for CPUs this machine may not have.

For each target CPU, a child process compiles the conv kernels (float32, forward and
backward) with ``NUMBA_CPU_NAME=<cpu> NUMBA_CPU_FEATURES=""`` (LLVM's default features of
that CPU) into an empty Numba cache, so nothing is run and nothing cached is reused. From
the assembly it takes the tile's hot loop (the self-looping block with the most FMAs) and
reports the register class, vector stack accesses in the loop (spills: must be 0), FMAs per
iteration, and llvm-mca's throughput for that CPU's scheduling model as FLOP/cycle, against
the model's peak (llvm-mca on a loop of independent register FMAs of the same width).

    python tools/isa_check.py [--cpus haswell znver3 ...] [--min-fraction 0.85]
                              [--allow CPU:TILE ...] [--mca PATH]

Exit status 1 if a loop spills, or runs below ``--min-fraction`` of the peak and is not
named by ``--allow`` (printed as a known shortfall), or no loop is found; 2 if llvm-mca is
missing (Debian: ``apt-get install llvm-19``). A tile of more than 8 pixels has a second
loop, for tiles whose inputs are not consecutive (a stride above 1; ``dw`` of a layer whose
channels are not a multiple of the tile): it runs the tile as groups of 8 pixels, and is
reported on a line of its own, not held to the bar (the VGG layers do not use it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CPUS = ("haswell", "znver3", "skylake-avx512", "icelake-server", "znver4")
LANES = {"xmm": 4, "ymm": 8, "zmm": 16}  # float32 lanes per register class
FMA = re.compile(r"^\s*vfmadd\d+ps\s")
LABEL = re.compile(r"^(\.LBB\w+):")
STACK_VECTOR = re.compile(
    r"^\s*v\w+\s.*\((%rsp|%rbp)\).*%[xyz]mm|^\s*v\w+\s.*%[xyz]mm.*\((%rsp|%rbp)\)"
)

# The child compiles the chunk kernels for the argument types of each call and runs
# nothing: the code is for another CPU (an AVX-512 kernel would stop an AVX2 host with
# SIGILL).
CHILD = """
import numba
import numpy as np
import kernels.conv as conv
from kernels import _isa, _jit
from kernels.conv import cpu


def compile_only(self, *args, chunks, parallel=True):
    self.body.compile(tuple(numba.typeof(a) for a in (*args, 0, chunks)))


_jit.ChunkKernel.__call__ = compile_only

rng = np.random.default_rng(0)
for c in (16, 32):
    x = rng.standard_normal((2, c, 14, 14)).astype(np.float32)
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    y = conv.conv2d_forward(x, w, None, 1, 1, parallel=False)
    conv.conv2d_backward(y, x, w, 1, 1, parallel=False)
isa = _isa.host_isa()
for pixels, lanes in sorted({_isa.tile(_isa.host(), np.float32, c) for c in (16, 32)}):
    tile = cpu.kernels(pixels, lanes)[0].body.py_func.__globals__["_tile_oc"]
    for sig in tile.signatures:
        print(f"#tile {isa} {pixels}x{lanes}")
        print(tile.inspect_asm(sig))
"""


def compile_asm(cpu: str) -> str:
    """Assembly of the float32 conv kernels compiled for ``cpu`` (nothing is run)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        env = {
            **os.environ,
            "NUMBA_CPU_NAME": cpu,
            "NUMBA_CPU_FEATURES": "",
            "NUMBA_CACHE_DIR": cache,
            "FASTNET_ISA": "",
            "PYTHONPATH": str(root),
        }
        done = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=False
        )
    if done.returncode:
        raise RuntimeError(
            f"compiling for {cpu} failed (exit status {done.returncode}):\n{done.stderr[-2000:]}"
        )
    return done.stdout


def hot_loops(asm: str) -> list[list[str]]:
    """Instruction lines of every block that ends with a jump to its own label and holds
    FMAs, the block with most FMAs of each function first."""
    loops, label, body = [], None, []
    for line in asm.splitlines():
        m = LABEL.match(line)
        if m:
            label, body = m.group(1), []
            continue
        text = line.split("#")[0].rstrip()
        if not text.strip() or text.strip().startswith("."):
            continue
        body.append(text.strip())
        if label and re.match(rf"j\w+\s+{re.escape(label)}$", text.strip()):
            if any(FMA.match(i) for i in body):
                loops.append(body)
            label, body = None, []
    return sorted(loops, key=lambda b: -fma_count(b))


def fma_count(loop: list[str]) -> int:
    """FMA instructions in ``loop``."""
    return sum(bool(FMA.match(i)) for i in loop)


def mca_cycles(mca: str, cpu: str, lines: list[str], iterations: int = 300) -> float:
    """Total cycles llvm-mca estimates for ``iterations`` runs of ``lines`` on ``cpu``."""
    done = subprocess.run(
        [mca, f"-mcpu={cpu}", f"-iterations={iterations}", "-all-views=false", "-summary-view"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return float(re.search(r"Total Cycles:\s+(\d+)", done.stdout).group(1))


def register_class(loop: list[str]) -> str:
    """The widest vector register class the loop's FMAs use."""
    used = {r for i in loop if FMA.match(i) for r in re.findall(r"%([xyz]mm)\d+", i)}
    return max(used, key=LANES.get)


def peak(mca: str, cpu: str, reg: str) -> float:
    """FLOP/cycle of 12 independent register FMAs of class ``reg`` on ``cpu``'s model."""
    fmas = [f"vfmadd231ps %{reg}13, %{reg}14, %{reg}{i}" for i in range(12)]
    return 12 * LANES[reg] * 2 * 300 / mca_cycles(mca, cpu, fmas)


def check(cpu: str, mca: str) -> tuple[list[dict], list[str]]:
    """Figures of each register tile's loop compiled for ``cpu`` and the problems found."""
    rows, problems = [], []
    for part in compile_asm(cpu).split("#tile ")[1:]:
        header, asm = part.split("\n", 1)
        isa, shape = header.split()
        loops = hot_loops(asm)
        if not loops:
            problems.append(f"{cpu}: no FMA loop found in the {shape} tile")
            continue
        pixels = int(shape.split("x")[0])
        kinds = [(loops[0], shape, True)]
        if pixels > 8:  # the groups of 8 pixels: the largest loop with fewer FMAs
            fewer = [b for b in loops if fma_count(b) < fma_count(loops[0])]
            kinds += [(fewer[0], f"{shape} as groups of 8", False)] if fewer else []
        for loop, name, gated in kinds:
            reg = register_class(loop)
            fmas = fma_count(loop)
            spills = sum(bool(STACK_VECTOR.match(i)) for i in loop)
            flops = fmas * LANES[reg] * 2 * 300 / mca_cycles(mca, cpu, loop)
            rows.append({
                "cpu": cpu, "isa": isa, "tile": name, "reg": reg, "fmas": fmas, "gated": gated,
                "instructions": len(loop), "spills": spills, "flops": flops,
                "peak": peak(mca, cpu, reg),
            })  # fmt: skip
            if spills:
                problems.append(f"{cpu}: {spills} vector stack accesses in the {name} tile loop")
    return rows, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", nargs="+", default=list(CPUS), help="LLVM CPU names")
    parser.add_argument("--min-fraction", type=float, default=0.85, help="of the model's peak")
    parser.add_argument("--allow", nargs="*", default=[], help="CPU:TILE below the bar, reported")
    parser.add_argument("--mca", default=shutil.which("llvm-mca-19") or shutil.which("llvm-mca"))
    args = parser.parse_args(argv)
    if not args.mca:
        print("isa_check: llvm-mca not found (apt-get install llvm-19)", file=sys.stderr)
        return 2
    failed = []
    print("| cpu | isa | tile (pixels x lanes) | registers | FMAs / iteration | instructions | "
          "vector spills | FLOP/cycle (llvm-mca) | model peak | fraction |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for cpu in args.cpus:
        rows, problems = check(cpu, args.mca)
        for r in rows:
            fraction = r["flops"] / r["peak"]
            print(f"| {cpu} | {r['isa']} | {r['tile']} | {r['reg']} | {r['fmas']} | "
                  f"{r['instructions']} | {r['spills']} | {r['flops']:.1f} | {r['peak']:.1f} | "
                  f"{fraction:.0%} |", flush=True)  # fmt: skip
            if fraction < args.min_fraction and r["gated"]:
                short = f"{cpu}: {r['tile']} tile at {fraction:.0%} of peak"
                if f"{cpu}:{r['tile']}" in args.allow:
                    print(f"known shortfall (--allow): {short}", file=sys.stderr)
                else:
                    problems.append(short)
        failed += problems
    for p in failed:
        print("FAIL", p, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
