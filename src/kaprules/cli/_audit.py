"""kaprules audit: many courses, a summary, findings and a report."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import stat
import sys
from typing import Any, NamedTuple, TextIO

from kaprules._output import Outputs, check_paths, write_error
from kaprules.cli._reading import need_extra, protocol_and_files
from kaprules.cli._render import audit_lines, json_out
from kaprules.cli._status import EXIT_FINDINGS, EXIT_OK, Failure, UsageError, complain, emit
from kaprules.errors import InputError, shown_id
from kaprules.findings_files import FindingsForm, form_of
from kaprules.protocol import Protocol, ProtocolVersions


def audit_command(args: argparse.Namespace, out: TextIO) -> int:
    protocol, files = protocol_and_files(args)
    if args.inputs.count("-") > 1:
        raise UsageError("standard input (-) can be read once")
    if "-" in args.inputs and sys.stdin is None:
        raise UsageError("standard input is closed; give a file instead of -")
    wanted = [(o, p) for o, p in (("--findings", args.findings), ("--html", args.html)) if p]
    # Before any work: a large audit is not run to be lost at the end.
    check_paths(wanted, [*args.inputs, *(args.protocol or ())])
    if args.html:
        need_extra(
            "jinja2",
            "--html needs the jinja2 package: pip install '.[audit]' in a checkout of kaprules",
        )
    with Outputs() as outputs:
        # Made now, so an unwritable directory stops the run before it starts.
        findings_out = outputs.open(args.findings) if args.findings else None
        html_out = outputs.open(args.html) if args.html else None
        done = audit_run(args, protocol, files, findings_out)
        if html_out is not None:
            with outputs.writing(args.html):
                html_out.write(done.page)
        data, seconds = done.data, done.seconds
        summary = io.StringIO()
        if args.format == "json":
            json_out(data, summary)
        else:
            summary.write("\n".join(audit_lines(data)) + "\n")
        # The summary reaches standard output (written and flushed) once every file is
        # ready, and before any is replaced: a summary that cannot be written (a full
        # disk, a closed pipe) is exit 2 with every target as it was. Nothing is left
        # for `out`.
        outputs.commit(lambda: emit(summary.getvalue(), sys.stdout, as_json=args.format == "json"))
    if sys.stderr is not None and sys.stderr.isatty():
        rate = data["lines_read"] / seconds if seconds > 0 else 0.0
        sys.stderr.write(
            f"kaprules: audited {data['lines_read']} records in {seconds:.1f} s "
            f"({rate:.0f} a second)\n"
        )
    return done.code


class Audited(NamedTuple):
    code: int
    data: dict[str, Any]
    page: str
    seconds: float


def audit_run(
    args: argparse.Namespace,
    protocol: Protocol | ProtocolVersions,
    files: list[tuple[str, str]],
    findings_out: TextIO | None,
) -> Audited:
    # The audit itself: findings written as they come; the summary and the HTML page
    # returned, for the caller to write and commit.
    import time

    from kaprules.auditing import audit, read_records

    started = time.time()
    several = len(args.inputs) > 1
    records = read_records(args.inputs)
    sample = args.sample if args.html else 0
    try:
        run = audit(
            records, protocol, as_of=args.as_of, jobs=args.jobs, sample=sample, engine=args.engine
        )
    except InputError as exc:
        raise Failure("cannot audit", exc.problems) from None
    if run.engine.fell_back:
        # Said before the work: the run takes the time of the engine that does it.
        complain(f"note: {run.engine.why}")
    form: FindingsForm | None = None
    if findings_out is not None:
        form = form_of(args.findings)  # .csv.gz is gzipped CSV (Outputs compresses)
    progress = _progress_bar(input_size(args.inputs))
    raw = getattr(findings_out, "buffer", None)
    try:
        if form is not None and isinstance(raw, io.BufferedWriter):
            # A plain file, device or pipe: the audit writes the rows to it itself (with
            # workers, each writes its own, copied to it whole by the kernel).
            assert findings_out is not None
            findings_out.flush()
            written = run.write_findings(raw.fileno(), form, inputs=several)
            while True:
                try:  # not a context manager: this runs once a batch
                    if next(written, None) is None:
                        break
                except OSError as exc:
                    raise write_error(args.findings, exc) from None
                if progress is not None:
                    _advance(progress, getattr(records, "bytes_read", 0), run.counted)
        else:
            # The findings file's text as the audit makes it (in the worker processes,
            # without result objects with the columnar engine), written here.
            for piece in run.findings_text(form, inputs=several):
                if progress is not None:
                    _advance(progress, getattr(records, "bytes_read", 0), run.counted)
                if piece and findings_out is not None:
                    try:  # not a context manager: this runs once a batch
                        findings_out.write(piece)
                    except OSError as exc:
                        raise write_error(args.findings, exc) from None
    except InputError as exc:
        raise Failure("cannot audit", exc.problems) from None
    finally:
        if progress is not None:
            progress.close()
    summary = run.summary
    summary.protocol_files = files
    seconds = time.time() - started
    # Which engine ran is beside the summary's stamps: both give the same summary.
    data = {**summary.to_dict(sources=several), "engine": run.engine.to_dict()}
    page = ""
    if args.html:
        from kaprules.audit_html import render

        page = render(
            data,
            run.samples,
            protocol=protocol if isinstance(protocol, Protocol) else protocol.latest,
            inputs=[shown_id(name, 200) for name in args.inputs],
            started=dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
            seconds=seconds,
            docs_url=args.docs_url or "",
            several_inputs=several,
            samples_capped=run.samples_capped,
        )
    return Audited(EXIT_OK if summary.ok else EXIT_FINDINGS, data, page, seconds)


def input_size(inputs: list[str]) -> int | None:
    """The inputs' total size in bytes as stored, or None when one is not a regular file.

    For standard input or a pipe, a progress bar can only count courses.
    """
    total = 0
    for name in inputs:
        try:
            info = os.stat(name) if name != "-" else None
        except OSError:
            return None
        if info is None or not stat.S_ISREG(info.st_mode):
            return None
        total += info.st_size
    return total


def _progress_bar(total: int | None) -> Any:
    # A progress bar on a terminal only; nothing extra when stderr is a file or a pipe.
    # With the inputs' size known it counts bytes, so that it shows the share done and
    # the time left; otherwise courses.
    if sys.stderr is None or not sys.stderr.isatty():
        return None
    try:
        import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    # No monitor thread: worker processes are forked while the bar is shown.
    tqdm.tqdm.monitor_interval = 0
    if total:
        return tqdm.tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )
    return tqdm.tqdm(unit=" courses", file=sys.stderr, dynamic_ncols=True, leave=False)


def _advance(progress: Any, read: int, counted: int) -> None:
    if progress.total:
        progress.update(min(read, progress.total) - progress.n)
        progress.set_postfix_str(f"{counted} courses", refresh=False)
    else:
        progress.update(counted - progress.n)
