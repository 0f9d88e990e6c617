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
from kaprules.auditing import Audit, AuditSummary, CourseResult, audit
from kaprules.clinic_calendar import ClinicCalendar
from kaprules.errors import InputError, KapRulesError, PathItem, Problem, ProtocolError
from kaprules.explanation import explain
from kaprules.forecasting import (
    Forecast,
    IntegrationDue,
    NextSession,
    SeriesStatus,
    check_booking,
    forecast,
)
from kaprules.loading import (
    calendar_schema,
    course_schema,
    dumps,
    load_calendar,
    load_course,
    load_protocol,
    parse_calendar,
    parse_course,
    parse_protocol,
    protocol_schema,
    resolve_protocol,
)
from kaprules.model import Course, Integration, JSONValue, Kind, Session
from kaprules.planning import Plan, PlannedSession, PlanStatus, plan
from kaprules.protocol import (
    STANDARD,
    STANDARD_V2,
    Protocol,
    builtin_protocols,
    evaluate,
    get_protocol,
    kap_protocol,
)
from kaprules.report import Finding, Help, Report, Severity
from kaprules.rules import (
    BaseRule,
    BoosterInterval,
    Escort,
    Fasting,
    IntegrationFollowup,
    Rule,
    SessionCount,
    SessionSpacing,
    Source,
    Therapist,
    TreatmentWindow,
)
from kaprules.timeline import TimedIntegration, TimedSession, Timeline

__all__ = [
    "STANDARD",
    "STANDARD_V2",
    "Audit",
    "AuditSummary",
    "BaseRule",
    "BoosterInterval",
    "ClinicCalendar",
    "Course",
    "CourseResult",
    "Escort",
    "Fasting",
    "Finding",
    "Forecast",
    "Help",
    "InputError",
    "Integration",
    "IntegrationDue",
    "IntegrationFollowup",
    "JSONValue",
    "KapRulesError",
    "Kind",
    "NextSession",
    "PathItem",
    "Plan",
    "PlanStatus",
    "PlannedSession",
    "Problem",
    "Protocol",
    "ProtocolError",
    "Report",
    "Rule",
    "SeriesStatus",
    "Session",
    "SessionCount",
    "SessionSpacing",
    "Severity",
    "Source",
    "Therapist",
    "TimedIntegration",
    "TimedSession",
    "Timeline",
    "TreatmentWindow",
    "__version__",
    "audit",
    "builtin_protocols",
    "calendar_schema",
    "check_booking",
    "course_schema",
    "dumps",
    "evaluate",
    "explain",
    "forecast",
    "get_protocol",
    "kap_protocol",
    "load_calendar",
    "load_course",
    "load_protocol",
    "parse_calendar",
    "parse_course",
    "parse_protocol",
    "plan",
    "protocol_schema",
    "resolve_protocol",
]
