"""Contrastive Unlikelihood Training (Xu et al., 2023, arXiv 2312.14591).

Pure torch / transformers / peft: this package imports nothing else of cutloop's.
Heavy libraries are imported by the submodules that need them, not here.
"""
