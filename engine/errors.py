"""Named errors of the engine. Each docstring is the default message."""


class EngineError(Exception):
    """The engine failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class StepError(EngineError):
    """The step failed.

    `retryable` says whether another attempt may succeed (a 503, a timeout) or not (a 404,
    a rejected approval, a config error). Handlers raise this, or NonRetryableError.
    """

    retryable = True

    def __init__(self, message: str | None = None, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class NonRetryableError(StepError):
    """The step failed and another attempt cannot help."""

    retryable = False


class StepTimeout(StepError):
    """The step did not finish within its time limit."""


class RegistryError(EngineError):
    """A step type or function could not be registered."""


class UnknownStepType(NonRetryableError):
    """No step type of this name is registered."""


class LostLease(EngineError):
    """This worker no longer owns the run (its lease was taken over, or the run was
    cancelled): it must stop and write nothing more."""


class RunNotFound(EngineError):
    """No run with this id."""


class StateConflict(EngineError):
    """The run or step is not in a state that allows this."""


class InvalidDefinition(EngineError):
    """The workflow definition has problems; fix them before publishing or running it."""

    def __init__(self, problems: list, message: str | None = None):
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(
            message or f"the definition has {count} problem{'s' if count != 1 else ''}"
        )
