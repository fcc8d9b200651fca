"""tsir's passes: one module per pass, each registered by name (and as tsir.transform.<Name>)."""

from . import (  # noqa: F401  (importing registers each pass)
    inject_async_copy,
    inject_ping_pong,
    inject_software_pipeline,
    inject_wgmma_sync,
    layout_inference,
    legalize_safe_memory_access,
    lower_cpengine_intrin,
    lower_shared_layout,
    lower_tile_op,
    plan_shared_memory,
    simplify,
    split_host_device,
    thread_sync,
    vectorize_loop,
    verify_pass,
    warp_specialize,
)
from .infra import Pass, PassContext, get, register_pass, registered, user_errors
from .pipeline import Lowered, default_pipeline, lower, run_pipeline

__all__ = [
    "Pass",
    "PassContext",
    "get",
    "register_pass",
    "registered",
    "Lowered",
    "default_pipeline",
    "lower",
    "run_pipeline",
    "user_errors",
]
