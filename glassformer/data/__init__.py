"""Examples, user data files, splits and the built-in tasks."""

from glassformer.data.examples import Example, Labeled, Pair, Text
from glassformer.data.readers import read_labeled, read_pairs, read_text
from glassformer.data.split import Splits, split_examples
from glassformer.data.tasks import DEFAULT_TASK, TASKS, Task, get_task

__all__ = [
    "DEFAULT_TASK",
    "Example",
    "Labeled",
    "Pair",
    "Splits",
    "TASKS",
    "Task",
    "Text",
    "get_task",
    "read_labeled",
    "read_pairs",
    "read_text",
    "split_examples",
]
