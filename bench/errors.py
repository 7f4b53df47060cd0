import signal


class InputError(Exception):
    """Input the program cannot use, from the user or from a file it reads: the command line
    reports it in one line with exit code 2, and nothing is written. Library code raises one of
    the kinds below; bench/cli/ adds its own for arguments."""


class ConfigError(InputError):
    """An option, setting, name or option file that is not valid."""


class UnusablePath(InputError):
    """A path that cannot be read or written as asked (a file where a folder must be, no
    permission, a link where none may be)."""


class UnusableFile(InputError):
    """A file whose contents cannot be used: a checkpoint, a run's record, a baseline."""


class Refused(InputError):
    """An action refused so that results stay sound: a baseline it would worsen, a run that is not
    complete, runs of different configurations in one table."""


class ClusterError(InputError):
    """The SLURM cluster cannot be used as asked (no client, no controller, a refused
    submission)."""


class UnusableModel(InputError):
    """An external model (python -m bench evaluate-model) that cannot be evaluated: its file or
    module is missing, its code raises, or what it returns is not codes or images as the
    protocol says (bench/external_model.py)."""


class CorruptRun(Exception):
    """A run's own files disagree with each other or cannot be read (its checkpoint, losses.csv):
    that run fails, with the hint to train it again with --restart."""


class RunFailed(Exception):
    """A run stopped (non-finite loss, ...): reported in one line and recorded in its folder."""


class Interrupted(Exception):
    """Training or evaluation stopped at a boundary, after its progress was checkpointed: on a
    signal (``signal_number``), or for the ``reason`` given."""

    def __init__(self, signal_number: int, reason: str | None = None):
        super().__init__(reason or signal.Signals(signal_number).name)
        self.signal_number = signal_number


class DeviceFault(Exception):
    """A fault that leaves the device unusable for every run of the process (an illegal memory
    access, a device-side assert): not the failure of the run that met it, since with
    asynchronous kernels any run may be the first to see another's fault."""


# CUDA's "sticky" errors: after one, every CUDA call of the process fails. Out of memory is not
# among them (a run that meets it fails alone, and the others go on).
_DEVICE_FAULTS = ("illegal memory access", "device-side assert", "unspecified launch failure",
                  "illegal instruction", "misaligned address", "invalid program counter",
                  "hardware stack error", "uncorrectable ecc error", "invalid address space",
                  "cuda error: unknown error", "launch timed out")


def is_device_fault(error: BaseException) -> bool:
    """Whether ``error`` is a CUDA fault that poisons the whole process's device context."""
    text = str(error).lower()
    return "cuda error" in text and any(marker in text for marker in _DEVICE_FAULTS)


def first_line(error: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message, for one-line reports; ``default`` (else the
    exception's type name) when the message is empty."""
    lines = str(error).strip().splitlines()
    if lines:
        return lines[0]
    return type(error).__name__ if default is None else default
