"""Exported generators: TorchScript, torch.export (.pt2) and ONNX files, latents -> images.

Each file holds a module that maps a batch of latents (batch, *latent) to images (batch, 1 or 3,
H, H). The spec's options (documented defaults):

- ``latent=100`` or ``latent=100x1x1``: one latent's shape; read from the file's input when
  it declares one (torch.export, ONNX), required for TorchScript.
- ``distribution=normal|uniform``: standard normal (default) or uniform on [-1, 1].
- ``output_range=-1,1``: the module's pixel range (default -1,1; 0,1 for sigmoid outputs).
- ``resolution=N``: checked against the output; by default learned from a probe batch.
- ``batch=N``: images per forward pass (default 64).
- ``dtype=float32|float16|bfloat16``: precision of the torch formats (half precision on a GPU).

A probe batch runs at load time, so a file whose output is not an image batch fails before any
chunk is computed, with an error naming the file. Loading runs no Python code from the file:
TorchScript and torch.export programs are graphs, ONNX runs in onnxruntime.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelverse.generators.specs import GeneratorSpec, GeneratorSpecError
from modelverse.generators.torch_generator import LatentSpec, TorchGenerator

COMMON_OPTIONS = ("latent", "distribution", "output_range", "resolution", "batch", "dtype")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_BATCH = 64
PROBE_BATCH = 2


def existing_file(spec: GeneratorSpec, known: tuple[str, ...] | None = COMMON_OPTIONS) -> Path:
    """The spec's file; its options are checked first (cheap errors before loading anything)."""
    if known is not None:
        spec.check_known(known)
    path = Path(spec.target)
    if not path.is_file():
        raise GeneratorSpecError(f"{spec.label}: no such file")
    return path


def spec_dtype(spec: GeneratorSpec) -> torch.dtype:
    return DTYPES[spec.choice("dtype", tuple(DTYPES), "float32")]


def _static_shape(dims: Any) -> tuple[int, ...] | None:
    """A latent shape from an input's declared dims (batch first), if every other dim is fixed."""
    rest = list(dims)[1:]
    if not rest or not all(isinstance(d, int) and d > 0 for d in rest):
        return None
    return tuple(rest)


def _output_resolution(module: nn.Module, spec: GeneratorSpec, latent: LatentSpec, dtype: torch.dtype,
                       device: torch.device) -> int:
    """Run a probe batch; the output must be (batch, 1 or 3, H, H)."""
    probe = latent.draw(PROBE_BATCH, 0).to(device, dtype)
    try:
        with torch.inference_mode():
            output = module(probe)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise GeneratorSpecError(
            f"{spec.label}: running the module on latents of shape {tuple(probe.shape)} failed ({first}); "
            "set latent= to the shape it takes"
        ) from exc
    shape = tuple(getattr(output, "shape", ()))
    if not isinstance(output, torch.Tensor) or len(shape) != 4 or shape[1] not in (1, 3) or shape[2] != shape[3] \
            or shape[0] != PROBE_BATCH:
        raise GeneratorSpecError(
            f"{spec.label}: the module returned {type(output).__name__} of shape {shape} for {PROBE_BATCH} "
            f"latents; expected images ({PROBE_BATCH}, 1 or 3, H, H) (NCHW)"
        )
    resolution = spec.integer("resolution")
    if resolution is not None and resolution != shape[2]:
        raise GeneratorSpecError(f"{spec.label}: the module makes {shape[2]}x{shape[3]} images, not resolution={resolution}")
    return int(shape[2])


def module_generator(module: nn.Module, spec: GeneratorSpec, device: str, default_latent: tuple[int, ...] | None,
                     known: tuple[str, ...] = COMMON_OPTIONS) -> TorchGenerator:
    """A TorchGenerator over a loaded module, configured by the spec's common options."""
    spec.check_known(known)
    shape = spec.shape("latent") or default_latent
    if shape is None:
        raise GeneratorSpecError(f"{spec.label}: say the latent shape with latent=N (e.g. latent=100 or 100x1x1)")
    latent = LatentSpec(shape=shape, distribution=spec.choice("distribution", ("normal", "uniform"), "normal"))  # type: ignore[arg-type]
    dtype = spec_dtype(spec)
    torch_device = torch.device(device)
    module = module.to(torch_device, dtype).eval()
    resolution = _output_resolution(module, spec, latent, dtype, torch_device)
    return TorchGenerator(
        module, latent, resolution=resolution, output_range=spec.value_range("output_range", (-1.0, 1.0)),
        device=torch_device, batch_size=spec.integer("batch", DEFAULT_BATCH) or DEFAULT_BATCH,
        name=spec.label, dtype=dtype,
    )


def load_torchscript(spec: GeneratorSpec, device: str = "cpu") -> TorchGenerator:
    path = existing_file(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": the format is still shipped
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise GeneratorSpecError(f"{spec.label}: not a TorchScript module ({_first_line(exc)})") from exc
    return module_generator(module, spec, device, None)


def load_torch_export(spec: GeneratorSpec, device: str = "cpu") -> TorchGenerator:
    path = existing_file(spec)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise GeneratorSpecError(f"{spec.label}: not a torch.export program (.pt2) ({_first_line(exc)})") from exc
    inputs = [node for node in program.graph.nodes if node.op == "placeholder"
              and node.name in set(program.graph_signature.user_inputs)]
    if len(inputs) != 1:
        raise GeneratorSpecError(f"{spec.label}: the program takes {len(inputs)} inputs; a generator takes one (the latents)")
    value = inputs[0].meta.get("val")
    declared = None
    if value is not None:
        dims = [int(d) if isinstance(d, int) or str(d).isdigit() else None for d in value.shape]
        declared = _static_shape(dims)
    graph = program.module().to(torch.device(device), spec_dtype(spec))
    return module_generator(ExportedModule(graph), spec, device, declared)


class ExportedModule(nn.Module):
    """Holds a torch.export graph module out of nn.Module's tree: the graph was captured in eval
    mode and refuses train()/eval() calls, which TorchGenerator makes on its module."""

    def __init__(self, graph: Any) -> None:
        super().__init__()
        object.__setattr__(self, "graph", graph)  # not a registered submodule

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.graph(latents)  # type: ignore[no-any-return]


class OnnxModule(nn.Module):
    """An onnxruntime session behind nn.Module's call: torch latents in, torch images out.

    A graph exported with a fixed batch size is run in batches of exactly that size (the last
    one padded), so any n can be sampled."""

    def __init__(self, session: Any, label: str) -> None:
        super().__init__()
        self.session = session
        self.label = label
        declared = session.get_inputs()[0]
        self.input_name = declared.name
        self.input_dtype = np.float16 if declared.type == "tensor(float16)" else np.float32
        batch = declared.shape[0] if declared.shape else None
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        array = latents.detach().float().cpu().numpy().astype(self.input_dtype)
        step = self.fixed_batch or len(array)
        outputs = []
        for start in range(0, len(array), max(step, 1)):
            piece = array[start : start + step]
            if self.fixed_batch and len(piece) < step:
                piece = np.concatenate([piece, np.zeros((step - len(piece), *piece.shape[1:]), piece.dtype)])
            result = self.session.run(None, {self.input_name: piece})[0]
            outputs.append(np.asarray(result, dtype=np.float32)[: min(step, len(array) - start)])
        return torch.from_numpy(np.concatenate(outputs)) if outputs else torch.empty(0)


def _providers(device: str) -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_onnx(spec: GeneratorSpec, device: str = "cpu") -> TorchGenerator:
    import onnxruntime

    path = existing_file(spec)
    if spec.text("dtype", "float32") != "float32":
        raise GeneratorSpecError(f"{spec.label}: dtype applies to torch formats; an ONNX graph runs in its own precision")
    options = onnxruntime.SessionOptions()
    # One worker process per core: the session gets the threads torch was given (Runtime sets them).
    options.intra_op_num_threads = max(torch.get_num_threads(), 1)
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=_providers(device))
    except Exception as exc:
        raise GeneratorSpecError(f"{spec.label}: not an ONNX model onnxruntime can run ({_first_line(exc)})") from exc
    if len(session.get_inputs()) != 1:
        raise GeneratorSpecError(f"{spec.label}: the graph takes {len(session.get_inputs())} inputs; a generator takes one (the latents)")
    module = OnnxModule(session, spec.label)
    return module_generator(module, spec, "cpu", _static_shape(session.get_inputs()[0].shape))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
