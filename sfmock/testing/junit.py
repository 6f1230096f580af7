"""JUnit XML reports of ``sfmock check``, the format CI systems render.

One ``<testsuite>`` per check; one ``<testcase>`` per check applied (``key-not-printed``,
``retries``, ...), and a ``<skipped>`` one for each check not applied, with the reason
(``faithful-request`` for a program with a request of its own). The check a run broke
carries a ``<failure>`` with the whole report;
a check that could not run at all (exit status 2) is one ``<testcase>`` with an ``<error>``.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from pathlib import Path

from sfmock.testing.program_check import ProgramReport

__all__ = ["write_error", "write_report"]

SUITE = "sfmock check"


def write_report(path: str | Path, report: ProgramReport) -> None:
    """Write ``report`` as JUnit XML to ``path``."""
    failed = report.failure.check if report.failure is not None else None
    tests = len(report.checks) + len(report.not_applied)
    suite = _suite(" ".join(report.setup.command), tests, 0 if failed is None else 1, 0, report.elapsed)
    suite.set("skipped", str(len(report.not_applied)))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("seed", str(report.setup.seed)),
        ("runs", str(report.runs)),
        ("replay", report.replay),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in report.outcomes.items())),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    text = report.text()
    for check in report.checks:
        case = ET.SubElement(suite, "testcase", classname=SUITE, name=check, time="0")
        if check == failed and report.failure is not None:
            message = report.failure.message.replace(report.setup.api_key, "<the API key>")
            failure = ET.SubElement(case, "failure", message=message, type=check)
            failure.text = text
    for check, why in report.not_applied.items():
        case = ET.SubElement(suite, "testcase", classname=SUITE, name=check, time="0")
        ET.SubElement(case, "skipped", message=f"not applied: {why}")
    ET.SubElement(suite, "system-out").text = text
    _write(path, suite)


def write_error(path: str | Path, command: str, message: str) -> None:
    """Write a report of a check that could not run (the program did not start, ...)."""
    suite = _suite(command, 1, 0, 1, 0.0)
    case = ET.SubElement(suite, "testcase", classname=SUITE, name="run the program", time="0")
    ET.SubElement(case, "error", message=message.splitlines()[0] if message else "error").text = message
    _write(path, suite)


def _suite(command: str, tests: int, failures: int, errors: int, elapsed: float) -> ET.Element:
    return ET.Element(
        "testsuite",
        name=f"{SUITE}: {command}",
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{elapsed:.3f}",
        timestamp=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
    )


def _write(path: str | Path, suite: ET.Element) -> None:
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
