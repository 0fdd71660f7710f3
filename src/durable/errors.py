"""Every error the library raises derives from :class:`DurableError`.

The hierarchy::

    DurableError
    ├── ConfigurationError          bad decorator options, bad ``db=``, bad template
    ├── NotInWorkflowError          a workflow-only call made outside a workflow body
    ├── RunIdError                  a run id that is empty, too long or has control chars
    ├── SerializationError          a value that cannot be stored as JSON (non-retryable)
    │   └── ResultTooLargeError     a result over the store's size limit (non-retryable)
    ├── NonDeterminismError         replay found a step recorded by a different task
    ├── RunConflictError            a run id already used by another workflow of the app
    ├── RunFailedError              re-raised outcome of a run that failed elsewhere
    ├── TaskFailedError             a recorded step failure whose type cannot be rebuilt
    ├── RunCancelledError           the run was cancelled
    ├── RunNotFoundError            no run with that id
    ├── RunNotFinishedError         a run that has not finished cannot be deleted
    ├── LeaseLostError              this process no longer owns the run (fenced out)
    ├── SignalTimeoutError          ``wf.signal(..., timeout=)`` expired
    ├── WorkflowTimeoutError        a workflow exceeded its ``timeout=``
    └── StoreError                  the store could not do what was asked
        ├── StoreCorruptedError     the database file is not a usable database
        └── StoreUnavailableError   the store cannot be reached or written right now

``NonRetryableError`` is a marker base: raise it (or a subclass) from a task to
stop retries at once.
"""

from __future__ import annotations


class DurableError(Exception):
    """A python-durable operation failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class NonRetryableError(Exception):
    """Raised from a task, this error is recorded at once: no further retries."""


class ConfigurationError(DurableError, ValueError, TypeError):
    """A decorator, its options, a store URL or an id template is invalid.

    It is both a ValueError and a TypeError, so code written for either of the
    errors Python raises for bad arguments keeps working.
    """


class NotInWorkflowError(DurableError, NonRetryableError, RuntimeError):
    """This can only be awaited in the body of a @wf.workflow function."""


class RunIdError(DurableError, ValueError):
    """The run id is not acceptable."""


class SerializationError(DurableError, NonRetryableError, TypeError):
    """A value could not be encoded as JSON for the store."""


class ResultTooLargeError(SerializationError):
    """An encoded value exceeds the store's size limit."""


class NonDeterminismError(DurableError):
    """Replay found a recorded step that does not match the code now running."""


class RunConflictError(DurableError):
    """The run id is already used by another workflow of this app."""


class RunFailedError(DurableError):
    """The run failed; the original error could not be rebuilt in this process."""

    def __init__(self, message: str, *, error_type: str = "", run_id: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.run_id = run_id


class TaskFailedError(DurableError):
    """A step failed earlier in this run and its error type could not be rebuilt."""

    def __init__(self, message: str, *, error_type: str = "", step_id: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.step_id = step_id


class RunCancelledError(DurableError):
    """The run was cancelled; resume it explicitly to continue."""


class RunNotFoundError(DurableError, LookupError):
    """No run exists with that id."""


class RunNotFinishedError(DurableError):
    """The run has not finished (it is queued or running), so it was not deleted."""

    def __init__(self, message: str, *, run_id: str = "", status: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class LeaseLostError(DurableError):
    """This process lost ownership of the run; another owner took over."""


class SignalTimeoutError(DurableError, TimeoutError):
    """No signal arrived before the timeout."""


class WorkflowTimeoutError(DurableError, TimeoutError):
    """The workflow did not finish within its timeout."""


class StoreError(DurableError):
    """The store could not complete the operation."""


class StoreCorruptedError(StoreError):
    """The database file is damaged or is not a database of this library."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or written right now; retry later."""
