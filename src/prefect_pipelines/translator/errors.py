"""Typed errors of the pipeline definition.

Every error names the offending field by its path in the definition, written the way a
user reads it (`stages[1].steps[0].runScriptConfig.image`), and says what is wrong.

    PipelineSpecError                    (ValueError)
    ├── YamlError                        the text is not YAML we accept
    │   ├── YamlSyntaxError              not parseable
    │   └── YamlLimitError               too big, too deep, too many aliases
    ├── MissingFieldError                a required field is absent
    ├── UnknownFieldError                a field the model does not have
    ├── WrongTypeError                   a value of the wrong type
    ├── InvalidValueError                a value outside what the field accepts
    ├── EmptyListError                   stages or steps empty
    ├── StepKindError                    a step with none or several of the step configs
    ├── ShellFieldsError                 isShell and the fields it allows disagree
    ├── EnvEntryError                    an env entry that is not NAME=value
    ├── BranchPatternError               a branch pattern that is not a valid regex
    ├── SourceStepPlacementError         sourceCodeConfig anywhere but first
    ├── UnsafePathError                  a path that leaves the workspace
    ├── CronExpressionError              a cron expression that does not parse
    ├── CronTimezoneError                an unknown timezone
    ├── CronTooFrequentError             a schedule that fires too often
    ├── BranchRequiredError              no branch given and none can be derived
    ├── BranchMismatchError              the branch asked for is excluded by the pattern
    ├── ImageTagError                    an image tag that cannot be expanded
    ├── StepLimitsError                  CPU or memory limits that cannot be met
    └── PrivilegedStepError              a privileged step in a project that does not allow them
"""

from __future__ import annotations


class PipelineSpecError(ValueError):
    """A pipeline definition that cannot be accepted.

    Attributes:
        path: where the problem is, e.g. `stages[0].steps[1].runScriptConfig.image`;
            empty for the document as a whole.
        message: what is wrong, without the path.
        file: the pipeline file it is in, for a definition read from a repository.
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.message = message
        self.path = path
        self.file = ""
        super().__init__(self.__str__())

    def at(self, path: str) -> PipelineSpecError:
        """Return this error with `path` set (kept when it is already set)."""
        if not self.path:
            self.path = path
            self.args = (self.__str__(),)
        return self

    def in_file(self, name: str) -> PipelineSpecError:
        """Return this error as one of the file `name` (a pipeline file in a repository)."""
        self.file = name
        self.args = (self.__str__(),)
        return self

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{self.file}: {text}" if getattr(self, "file", "") else text


class YamlError(PipelineSpecError):
    """The text is not YAML that this project accepts."""


class YamlSyntaxError(YamlError):
    """The text does not parse as YAML."""


class YamlLimitError(YamlError):
    """The text is over a size, depth or alias limit."""


class MissingFieldError(PipelineSpecError):
    """A required field is absent."""


class UnknownFieldError(PipelineSpecError):
    """A field that the model does not define (unknown keys are rejected)."""


class WrongTypeError(PipelineSpecError):
    """A value of the wrong type (a list where a string belongs, ...)."""


class InvalidValueError(PipelineSpecError):
    """A value of the right type that the field does not accept."""


class EmptyListError(PipelineSpecError):
    """`stages`, or a stage's `steps`, is empty."""


class StepKindError(PipelineSpecError):
    """A step that has none, or more than one, of the step configs."""


class ShellFieldsError(PipelineSpecError):
    """`isShell` and the fields it allows do not agree."""


class EnvEntryError(PipelineSpecError):
    """An `env` entry that is not `NAME=value`, repeats a name or sets a reserved one."""


class BranchPatternError(PipelineSpecError):
    """A branch pattern that is not a valid regular expression."""


class SourceStepPlacementError(PipelineSpecError):
    """A `sourceCodeConfig` step that is not the first step of the first stage."""


class UnsafePathError(PipelineSpecError):
    """A path that is absolute or leaves the workspace."""


class CronExpressionError(PipelineSpecError):
    """A cron expression that does not parse."""


class CronTimezoneError(PipelineSpecError):
    """A timezone that is not an IANA name."""


class CronTooFrequentError(PipelineSpecError):
    """A cron expression that fires more often than the configured minimum interval."""


class BranchRequiredError(PipelineSpecError):
    """No branch was given for a run and the pipeline's pattern names none."""


class BranchMismatchError(PipelineSpecError):
    """The branch asked for is not one the pipeline's branch condition accepts."""


class ImageTagError(PipelineSpecError):
    """An image reference that cannot be expanded into a valid tag."""


class StepLimitsError(PipelineSpecError):
    """A step's CPU or memory request over its limit (its own or its project's)."""


class PrivilegedStepError(PipelineSpecError):
    """`privileged: true` in a project whose admin has not allowed privileged steps."""
