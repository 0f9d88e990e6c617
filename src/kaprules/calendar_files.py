"""Calendar files: where the calendar format's reader was, kept importable.

The calendar format is read and written with the class it builds, in
`kaprules.clinic_calendar` (`calendar_from_data`, behind `ClinicCalendar.from_dict`, and
`ClinicCalendar.to_dict`): `ClinicCalendar.from_dict` needs the reader, and a class that
imported its reader from a module above it made a circle of the two modules.
"""

from __future__ import annotations

from kaprules.clinic_calendar import calendar_from_data

__all__ = ["calendar_from_data"]
