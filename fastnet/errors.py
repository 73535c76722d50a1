"""fastnet's own error types: every failure a user can cause is one of these."""


class FastnetError(Exception):
    """Base class of the errors fastnet raises on purpose."""


class DataError(FastnetError, ValueError):
    """A data file is missing, malformed or fails its checksum."""


class CheckpointError(FastnetError, ValueError):
    """A checkpoint file is not a valid fastnet checkpoint for this use."""


class ConfigError(FastnetError, ValueError):
    """A training configuration value is out of range or of the wrong type."""


class TrainingDiverged(FastnetError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(FastnetError):
    """Training stopped on Ctrl-C after saving a checkpoint; the message says how to resume."""


class OnnxError(FastnetError, ValueError):
    """An ONNX file cannot be read as a fastnet model, or a model cannot be written as one."""


class ImageError(FastnetError, ValueError):
    """An image file cannot be read: not an image, truncated, or too large to decode."""


class MissingExtra(FastnetError):
    """An optional dependency is not installed."""


class DistributedError(FastnetError):
    """The processes of an MPI job cannot train together (launched without mpi4py, or they
    do not start from the same data, weights or configuration)."""
