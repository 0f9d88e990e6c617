"""kaprules: the treatment protocol of ketamine-assisted psychotherapy as composable validators.

Data flows one way: input -> [`Course`][kaprules.Course] -> rules ->
[`Finding`][kaprules.Finding] objects -> [`Report`][kaprules.Report] -> output.

Example:
    >>> import kaprules
    >>> course = kaprules.load_course("examples/compliant.json")  # doctest: +SKIP
    >>> kaprules.evaluate(course).ok  # doctest: +SKIP
    True

kaprules encodes protocols as written; it gives no medical advice.
"""

from kaprules._version import __version__
from kaprules.audit import explain
from kaprules.errors import InputError, KapRulesError, Problem, ProtocolError
from kaprules.loading import course_schema, load_course, parse_course
from kaprules.model import Course, Kind, Session
from kaprules.protocol import STANDARD, Protocol, evaluate
from kaprules.report import Finding, Report, Severity
from kaprules.rules import (
    BoosterInterval,
    Escort,
    Fasting,
    Rule,
    SessionCount,
    SessionSpacing,
    Source,
    TreatmentWindow,
)
from kaprules.timeline import TimedSession, Timeline

__all__ = [
    "STANDARD",
    "BoosterInterval",
    "Course",
    "Escort",
    "Fasting",
    "Finding",
    "InputError",
    "KapRulesError",
    "Kind",
    "Problem",
    "Protocol",
    "ProtocolError",
    "Report",
    "Rule",
    "Session",
    "SessionCount",
    "SessionSpacing",
    "Severity",
    "Source",
    "TimedSession",
    "Timeline",
    "TreatmentWindow",
    "__version__",
    "course_schema",
    "evaluate",
    "explain",
    "load_course",
    "parse_course",
]
