import ctypes, struct, threading, timeit, sys
import torch, tvm_ffi
from tsir.runtime import driver as drv
from tsir.runtime.launch import HostProgram, KernelArg, Launcher, LaunchStep, TensorParam
sys.path.insert(0, "benchmarks")
import launch_overhead as B
d = drv.driver(); torch.cuda.init()
cubin = B.compile_empty("sm_90")
prog = HostProgram(params=tuple(TensorParam(p, "float32", ("n",)) for p in "abc"),
    steps=(LaunchStep("empty3", ("(n + 255) // 256", "1", "1"), (256, 1, 1), 0,
        (KernelArg("a", "ptr"), KernelArg("b", "ptr"), KernelArg("c", "ptr"), KernelArg("n", "int32"))),))
a, b, c = (torch.empty(1024, device="cuda") for _ in range(3))
L = Launcher(prog, cubin); L(a, b, c); torch.cuda.synchronize()
ctx = L._devs[0][0]; ci = int(ctx); cg = d.cuCtxGetCurrent; raw = torch._C._cuda_getCurrentRawStream
cs = L._cstreams
N = 100000
def tm(stmt):
    r = sorted(timeit.repeat(stmt, globals=globals(), number=N, repeat=9))
    print(f"  {stmt:60s} min {r[0]/N*1e9:7.1f} med {r[4]/N*1e9:7.1f} ns", flush=True)
for s in ["cg()", "cg()[1] != ctx", "int(cg()[1]) != ci", "cs.get(0)", "cs.get(raw(0))", "raw(0)", "d.CUstream(0)"]:
    tm(s)
g = type(L).__call__.__globals__
real_launch = g["_launch"]; okr = (d.CUresult.CUDA_SUCCESS,); real_ctx = g["_ctx_get"]; cur = cg()
fake_launch = lambda *_: okr; fake_ctx = lambda: cur
def run(label, fn, n=20000):
    r = sorted(timeit.repeat(fn, number=n, repeat=9))
    print(f"{label:50s} min {r[0]/n*1e6:6.2f} med {r[4]/n*1e6:6.2f} us", flush=True)
for rnd in range(2):
    for lname, launch in (("real", real_launch), ("noop", fake_launch)):
        for cname, cgf in (("ctx", real_ctx), ("fakectx", fake_ctx)):
            g["_launch"] = launch; g["_ctx_get"] = cgf
            run(f"{lname} {cname} stream=None", lambda: L(a, b, c))
            run(f"{lname} {cname} stream=0", lambda: L(a, b, c, stream=0))
            torch.cuda.synchronize()
