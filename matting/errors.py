"""Error types raised at the boundaries (user files, checkpoints, devices).

Each carries a message meant for a person: the CLI prints it as one line and
exits non-zero, the service turns it into a 4xx answer.
"""


class MattingError(Exception):
    """Base class for every error the project reports to a user."""


class InputError(MattingError):
    """An input image is missing, unreadable, of an unsupported type or too large."""


class UnsupportedTypeError(InputError):
    """The bytes are not one of the accepted image types (identified by sniffing)."""


class InputTooLargeError(InputError):
    """An input exceeds a byte or pixel limit (decompression bombs included)."""


class CheckpointError(MattingError):
    """A checkpoint is missing, corrupt, of another format or of another architecture."""


class DeviceError(MattingError):
    """The requested device or precision is not available on this machine."""


class ManifestError(MattingError):
    """An exported model cannot be served: its manifest or file is missing, corrupt,
    does not match its sha256, or was built for other shapes or another runtime."""


class ExportError(MattingError):
    """An export gate failed (checker, parity) or a tool it needs is missing."""
