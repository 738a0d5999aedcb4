"""The bottom layer: argument checks, atomic files, torchrun processes, the one cosine,
batched embedding and the bootstrap. Imports nothing else of faceexp.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["BatchedEmbed", "layer_outputs", "resolve_batch_size", "DEFAULT_BATCH_SIZE",
            "SINGLE_LAYER"], "batching"),
    **dict.fromkeys(["check_n_boot", "check_level", "as_rng", "percentile_interval", "draw_counts",
            "mean_interval", "paired_difference"], "bootstrap"),
    **dict.fromkeys(["positive_int", "finite_real", "seed", "one_of"], "checks"),
    **dict.fromkeys(["context", "barrier", "is_main_process"], "distributed"),
    **dict.fromkeys(["lazy_exports"], "exports"),
    **dict.fromkeys(["atomic_write", "write_text", "write_json", "write_csv", "remove_orphans",
            "file_sha256", "json_sha256", "package_path", "cache_dir", "cached", "CacheWarning",
            "record_path"], "files"),
    **dict.fromkeys(["DEFAULT_FRACTION", "MEMORY_VARIABLE", "bootstrap_memory", "check_memory",
            "explanation_memory", "format_bytes", "memory_limit", "physical_memory"], "limits"),
    **dict.fromkeys(["FolderLock", "FolderInUse", "LOCK_NAME"], "locks"),
    **dict.fromkeys(["cosine_rows", "cosine_to", "pair_cosine", "pair_positions"], "similarity"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
