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

# Public names are imported on first use (PEP 562), not here: `import kaprules` then loads no
# audit, Dask, calendar-export or even attrs code, and a command loads only what it uses.
# typing costs ~10 ms of start-up, hence this constant, which mypy and ruff read as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from kaprules.auditing import Audit, AuditSummary, CourseResult, audit
    from kaprules.clinic_calendar import ClinicCalendar, Closure
    from kaprules.errors import InputError, KapRulesError, PathItem, Problem, ProtocolError
    from kaprules.evaluation import evaluate
    from kaprules.explanation import explain
    from kaprules.forecasting import (
        Forecast,
        IntegrationDue,
        NextSession,
        Refusal,
        SeriesStatus,
        check_booking,
        forecast,
        protocol_phases,
    )
    from kaprules.loading import (
        calendar_schema,
        course_schema,
        dumps,
        load_calendar,
        load_course,
        load_protocol,
        load_versions,
        parse_calendar,
        parse_course,
        parse_protocol,
        parse_session,
        protocol_schema,
        resolve_protocol,
    )
    from kaprules.model import Course, Integration, JSONValue, Kind, Session, Vital, Waiver
    from kaprules.phases import (
        MAX_WEEK,
        PHASES,
        TRD_PHASES,
        BeyondEvaluated,
        MinGap,
        Overdue,
        Phase,
        PhaseList,
        WeeklyCap,
        WeeklyTarget,
        phase_of,
        treatment_week,
        week_dates,
    )
    from kaprules.planning import MissedTarget, Plan, PlannedSession, PlanStatus, plan
    from kaprules.protocol import (
        ESKETAMINE_MDSI,
        ESKETAMINE_TRD,
        STANDARD,
        STANDARD_V2,
        Protocol,
        ProtocolVersions,
        builtin_protocols,
        get_protocol,
        kap_protocol,
    )
    from kaprules.report import Finding, Help, Report, Severity
    from kaprules.rules import (
        SERIES_LENGTH,
        SERIES_WINDOW,
        AtMost,
        BaseRule,
        BoosterInterval,
        Bounds,
        Choices,
        CourseShape,
        Escort,
        Fasting,
        IntegrationFollowup,
        KindSet,
        Parameter,
        ParameterCheck,
        Role,
        Rule,
        SessionCount,
        SessionSpacing,
        Source,
        Therapist,
        TreatmentWindow,
        cited_source,
        parameter,
        parameters_of,
        rationale_of,
        severity_field,
    )
    from kaprules.session_day import (
        BLOOD_PRESSURE_WINDOW,
        BloodPressureAfter,
        BloodPressureBefore,
        BloodPressureLimit,
        Dose,
        DoseSet,
        LiquidFasting,
        MonitoringForm,
        PostDoseMonitoring,
        RemsEnrolment,
    )
    from kaprules.timeline import TimedIntegration, TimedSession, Timeline
    from kaprules.waivers import REASONS

# The module defining each public name; tests/test_startup.py holds it equal to the imports
# above and to __all__.
_MODULES: dict[str, tuple[str, ...]] = {
    "auditing": (
        "Audit",
        "AuditSummary",
        "CourseResult",
        "audit",
    ),
    "clinic_calendar": (
        "ClinicCalendar",
        "Closure",
    ),
    "errors": (
        "InputError",
        "KapRulesError",
        "PathItem",
        "Problem",
        "ProtocolError",
    ),
    "evaluation": ("evaluate",),
    "explanation": ("explain",),
    "forecasting": (
        "Forecast",
        "IntegrationDue",
        "NextSession",
        "Refusal",
        "SeriesStatus",
        "check_booking",
        "forecast",
        "protocol_phases",
    ),
    "loading": (
        "calendar_schema",
        "course_schema",
        "dumps",
        "load_calendar",
        "load_course",
        "load_protocol",
        "load_versions",
        "parse_calendar",
        "parse_course",
        "parse_protocol",
        "parse_session",
        "protocol_schema",
        "resolve_protocol",
    ),
    "model": (
        "Course",
        "Integration",
        "JSONValue",
        "Kind",
        "Session",
        "Vital",
        "Waiver",
    ),
    "phases": (
        "MAX_WEEK",
        "PHASES",
        "TRD_PHASES",
        "BeyondEvaluated",
        "MinGap",
        "Overdue",
        "Phase",
        "PhaseList",
        "WeeklyCap",
        "WeeklyTarget",
        "phase_of",
        "treatment_week",
        "week_dates",
    ),
    "planning": (
        "MissedTarget",
        "Plan",
        "PlanStatus",
        "PlannedSession",
        "plan",
    ),
    "protocol": (
        "ESKETAMINE_MDSI",
        "ESKETAMINE_TRD",
        "STANDARD",
        "STANDARD_V2",
        "Protocol",
        "ProtocolVersions",
        "builtin_protocols",
        "get_protocol",
        "kap_protocol",
    ),
    "report": (
        "Finding",
        "Help",
        "Report",
        "Severity",
    ),
    "rules": (
        "SERIES_LENGTH",
        "SERIES_WINDOW",
        "AtMost",
        "BaseRule",
        "BoosterInterval",
        "Bounds",
        "Choices",
        "CourseShape",
        "Escort",
        "Fasting",
        "IntegrationFollowup",
        "KindSet",
        "Parameter",
        "ParameterCheck",
        "Role",
        "Rule",
        "SessionCount",
        "SessionSpacing",
        "Source",
        "Therapist",
        "TreatmentWindow",
        "cited_source",
        "parameter",
        "parameters_of",
        "rationale_of",
        "severity_field",
    ),
    "session_day": (
        "BLOOD_PRESSURE_WINDOW",
        "BloodPressureAfter",
        "BloodPressureBefore",
        "BloodPressureLimit",
        "Dose",
        "DoseSet",
        "LiquidFasting",
        "MonitoringForm",
        "PostDoseMonitoring",
        "RemsEnrolment",
    ),
    "timeline": (
        "TimedIntegration",
        "TimedSession",
        "Timeline",
    ),
    "waivers": ("REASONS",),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "BLOOD_PRESSURE_WINDOW",
    "ESKETAMINE_MDSI",
    "ESKETAMINE_TRD",
    "MAX_WEEK",
    "PHASES",
    "REASONS",
    "SERIES_LENGTH",
    "SERIES_WINDOW",
    "STANDARD",
    "STANDARD_V2",
    "TRD_PHASES",
    "AtMost",
    "Audit",
    "AuditSummary",
    "BaseRule",
    "BeyondEvaluated",
    "BloodPressureAfter",
    "BloodPressureBefore",
    "BloodPressureLimit",
    "BoosterInterval",
    "Bounds",
    "Choices",
    "ClinicCalendar",
    "Closure",
    "Course",
    "CourseResult",
    "CourseShape",
    "Dose",
    "DoseSet",
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
    "KindSet",
    "LiquidFasting",
    "MinGap",
    "MissedTarget",
    "MonitoringForm",
    "NextSession",
    "Overdue",
    "Parameter",
    "ParameterCheck",
    "PathItem",
    "Phase",
    "PhaseList",
    "Plan",
    "PlanStatus",
    "PlannedSession",
    "PostDoseMonitoring",
    "Problem",
    "Protocol",
    "ProtocolError",
    "ProtocolVersions",
    "Refusal",
    "RemsEnrolment",
    "Report",
    "Role",
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
    "Vital",
    "Waiver",
    "WeeklyCap",
    "WeeklyTarget",
    "__version__",
    "audit",
    "builtin_protocols",
    "calendar_schema",
    "check_booking",
    "cited_source",
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
    "load_versions",
    "parameter",
    "parameters_of",
    "parse_calendar",
    "parse_course",
    "parse_protocol",
    "parse_session",
    "phase_of",
    "plan",
    "protocol_phases",
    "protocol_schema",
    "rationale_of",
    "resolve_protocol",
    "severity_field",
    "treatment_week",
    "week_dates",
]


def _load(name: str) -> object:
    """A public name, imported from its module on first use (PEP 562 ``__getattr__``)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'kaprules' has no attribute {name!r}")
    value: object = getattr(__import__(f"kaprules.{module}", fromlist=[name]), name)
    globals()[name] = value  # later look-ups find it directly
    return value


def __dir__() -> list[str]:
    """The module's names, the public ones included before their first use."""
    return sorted({*globals(), *__all__})


if not TYPE_CHECKING:
    # Hidden from type checkers, which would otherwise accept any attribute of kaprules.
    __getattr__ = _load
