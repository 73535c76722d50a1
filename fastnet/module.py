"""The layer contract: ``Parameter``, ``Module`` and ``Sequential``.

A module has an explicit ``forward(x) -> y`` and ``backward(dy) -> dx``. ``forward``
caches what ``backward`` needs; ``backward`` assigns ``p.grad`` for the module's own
parameters (no accumulation), returns ``dx`` and never mutates ``dy``. Parameters,
buffers and sub-modules register on attribute assignment, in insertion order.

Each layer computes with one of two kernel sets, chosen per module by ``Module.to``: the
fast wrappers of ``kernels/<family>`` (Numba on the CPU, numba-cuda on the GPU) or their
NumPy references (``to("reference")``). A layer class lists both in its ``KERNELS`` table;
``to`` resolves the table into the layer's ``ops`` once, so the layer code is one path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fastnet import backend
from fastnet.backend import is_device

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


class Parameter:
    """A trainable array and its gradient.

    Parameters
    ----------
    data : ndarray or device array
        The value (float32 or float64), stored as given (on the host, or on the GPU as a
        numba-cuda device array after ``Module.to("cuda")``).
    name : str
        Dotted name, filled in by the owning module when it registers the parameter.
    """

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.data = data
        self.grad: np.ndarray | None = None
        self.name = name

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of layers and networks.

    Attributes
    ----------
    training : bool
        Training or evaluation mode, set recursively by ``train()`` / ``eval()``.
    kernel_set : {"fast", "reference"}
        The kernels this module computes with, set recursively by ``to(device)``.
    ops
        ``KERNELS[kernel_set]``: the functions the layer calls (None for a module that
        computes nothing itself).
    KERNELS : dict of str to ops, class attribute
        The layer family's table: ``"fast"`` and ``"reference"`` entries of the same
        shape, e.g. ``Kernels(forward, backward)``. Empty for containers.
    """

    KERNELS: ClassVar[dict[str, Any]] = {}
    # Set by __init__ and _use_kernels through object.__setattr__ (declared for type checkers).
    _parameters: dict[str, Parameter]
    _buffers: dict[str, None]
    _modules: dict[str, Module]
    training: bool
    kernel_set: str
    ops: Any

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        self._use_kernels("fast")

    def _use_kernels(self, kernel_set: str) -> None:
        """Compute with ``kernel_set`` ("fast" or "reference"); this module only."""
        object.__setattr__(self, "kernel_set", kernel_set)
        object.__setattr__(self, "ops", self.KERNELS.get(kernel_set))

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__()")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if name in self._buffers and not (isinstance(value, np.ndarray) or is_device(value)):
            del self._buffers[name]
        if isinstance(value, Parameter):
            value.name = value.name or name
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Register state that is saved in ``state_dict`` but not trained (running stats)."""
        setattr(self, name, value)
        self._buffers[name] = None

    # -- computation -------------------------------------------------------------------
    def forward(self, *args: Any) -> Any:
        """Compute the output and cache what ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: Any) -> np.ndarray:
        """Return ``dx`` and set the gradients of this module's parameters.

        ``dy`` is the gradient of the output (an array), or for a loss the gradient of the
        loss value (a float, 1.0 at the end of the chain).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args: Any) -> Any:
        return self.forward(*args)

    # -- traversal ---------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield ``(dotted_name, module)`` for this module and all sub-modules."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(dotted_name, parameter)`` in registration order."""
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> list[Parameter]:
        """All parameters, in registration order."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(dotted_name, array)`` for every buffer."""
        for prefix, module in self.named_modules():
            for name in module._buffers:
                yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    # -- modes -------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Self:
        """Set training mode on this module and all sub-modules; returns ``self``."""
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Self:
        """Set evaluation mode (``train(False)``); returns ``self``."""
        return self.train(False)

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Host (NumPy) copies of all parameters and buffers, keyed by dotted attribute path.

        Always host arrays, also for a module on the GPU, so a checkpoint saved there loads
        on a machine without one.
        """
        state = {name: _host_copy(p.data) for name, p in self.named_parameters()}
        state.update({name: _host_copy(b) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy ``state`` into the parameters and buffers, in place.

        Parameters
        ----------
        state : dict of str to ndarray
            As returned by ``state_dict`` (host arrays; copied onto the GPU, in the
            module's dtype, when the module lives there).
        strict : bool
            Require exactly the same keys. Shapes must always match.

        Raises
        ------
        KeyError
            Missing or unexpected keys (with ``strict``).
        ValueError
            A value whose shape differs from the module's, that is not a float array,
            or that holds NaN or infinity.
        """
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state.items():
            if name not in targets:
                continue
            target, value = targets[name], np.asarray(value)
            if target.shape != value.shape:
                raise ValueError(
                    f"load_state_dict: {name} must have shape {target.shape}, got {value.shape}"
                )
            if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
                raise ValueError(
                    f"load_state_dict: {name} must be finite floats, got dtype {value.dtype}"
                    + (" with NaN or inf" if value.dtype.kind == "f" else "")
                )
        for name, value in state.items():
            if name not in targets:
                continue
            if is_device(targets[name]):
                device_array: Any = targets[name]
                device_array.copy_to_device(np.ascontiguousarray(value, device_array.dtype))
            else:
                targets[name][...] = value

    def to(self, device_or_dtype: str | np.dtype | type) -> Self:
        """Move the module to a device, or convert it to a dtype; in place.

        Parameters
        ----------
        device_or_dtype : "cpu", "cuda", "reference", float32 or float64
            ``"cuda"``: every parameter and buffer becomes a numba-cuda device array;
            ``"cpu"``: they come back as NumPy arrays; ``"reference"``: NumPy arrays,
            and every module computes with the NumPy references of its kernels
            (``kernels/<family>/reference.py``: slow, steppable in a debugger) until
            moved to ``"cpu"`` or ``"cuda"``. A dtype converts them (on the device they
            live on, with the same kernels).

        Gradients are cleared. Returns ``self``.

        Raises
        ------
        fastnet.backend.DeviceError
            ``"cuda"`` without a usable CUDA GPU.
        """
        if isinstance(device_or_dtype, str) and device_or_dtype in backend.KERNEL_SETS:
            move = backend.to_host
            if device_or_dtype == "cuda":
                backend.resolve_device("cuda")
                move = backend.to_device
            for _, module in self.named_modules():
                module._use_kernels(backend.KERNEL_SETS[device_or_dtype])
            return self._apply(move)
        dtype = np.dtype(device_or_dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"Module.to: dtype must be float32 or float64, got {dtype}")
        return self._apply(lambda a: _astype(a, dtype))

    def _apply(self, fn: Any) -> Self:
        """Replace every parameter and buffer ``a`` by ``fn(a)``; clear the gradients."""
        for _, module in self.named_modules():
            for p in module._parameters.values():
                p.data, p.grad = fn(p.data), None
            for name in module._buffers:
                object.__setattr__(module, name, fn(getattr(module, name)))
        return self

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): {child!r}".replace("\n", "\n  ") for name, child in self._modules.items()
        ]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}({extra}\n" + "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        """Hyper-parameters shown by ``repr``."""
        return ""


def _host_copy(a: Any) -> np.ndarray:
    """A NumPy copy of a host or device array."""
    return a.copy_to_host() if is_device(a) else a.copy()


def _astype(a: Any, dtype: np.dtype) -> Any:
    """``a`` converted to ``dtype`` on its own device."""
    if is_device(a):
        return a if a.dtype == dtype else backend.to_device(a.copy_to_host().astype(dtype))
    return a.astype(dtype)


class Sequential(Module):
    """Modules applied in order; ``backward`` runs them in reverse.

    Sub-modules are named ``"0"``, ``"1"``, ... as in PyTorch.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} must be a Module, got {type(m).__name__}")
            setattr(self, str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Each module in turn; a module followed by one it ``fuses`` (a ``Conv2d`` and its
        ReLU) runs both in its own kernel: the same bits, one pass over memory fewer."""
        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            after = modules[i + 1] if i + 1 < len(modules) else None
            if _fuses(modules[i], after):
                x = modules[i].forward(x, after)
                i += 2
            else:
                x = modules[i](x)
                i += 1
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Each module's backward in reverse order (a fused pair's in one kernel, as in
        ``forward``)."""
        modules = list(self._modules.values())
        i = len(modules) - 1
        while i >= 0:
            if i > 0 and _fuses(modules[i - 1], modules[i]):
                fused: Any = modules[i - 1]  # a Conv2d: backward(dy, relu)
                dy = fused.backward(dy, modules[i])
                i -= 2
            else:
                dy = modules[i].backward(dy)
                i -= 1
        return dy


def _fuses(module: Module, after: Module | None) -> bool:
    """Whether ``module`` runs ``after`` (the next module) in its own kernels."""
    fuses = getattr(module, "fuses", None)
    return fuses is not None and fuses(after)
