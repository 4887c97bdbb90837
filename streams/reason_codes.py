"""The registry of reason codes: one source of truth for every alert, pause and audit entry.

GOV_* are governance/operations, RISK_* protect money from bad data or models,
EXEC_* are execution quality. The family groups repeats into one incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True, slots=True)
class ReasonCode:
    code: str
    family: str
    severity: Severity
    pauses: bool
    description: str


_CODES = [
    ReasonCode("RISK_STALE_BOOK", "staleness", Severity.CRITICAL, True,
               "order book feed older than its staleness threshold"),
    ReasonCode("RISK_STALE_REGISTRY", "staleness", Severity.CRITICAL, True,
               "market registry feed older than its staleness threshold"),
    ReasonCode("RISK_STALE_MODEL", "staleness", Severity.WARNING, True,
               "model output older than its staleness threshold"),
    ReasonCode("RISK_STALE_DATA", "staleness", Severity.WARNING, True,
               "a data feed older than its staleness threshold"),
    ReasonCode("RISK_MODEL_DRIFT", "drift", Severity.CRITICAL, False,
               "live feature distribution drifted from training (KL above threshold)"),
    ReasonCode("RISK_CANARY_REGRESSION", "canary", Severity.CRITICAL, False,
               "canary is worse than baseline on a leading metric"),
    ReasonCode("RISK_STATE_DIVERGENCE", "divergence", Severity.CRITICAL, False,
               "a fill or order intent on a scope paused for longer than the grace"),
    ReasonCode("GOV_HEARTBEAT_MISSED", "heartbeat", Severity.CRITICAL, True,
               "no heartbeat within interval x tolerance"),
    ReasonCode("GOV_DATA_GAP", "gaps", Severity.WARNING, False,
               "missing sequence numbers in a feed"),
    ReasonCode("GOV_SLO_BURN", "slo", Severity.CRITICAL, True,
               "SLO error budget burning faster than a page-level multiwindow rule allows"),
    ReasonCode("GOV_SLO_BURN_TICKET", "slo", Severity.WARNING, False,
               "SLO error budget burning faster than a ticket-level multiwindow rule allows"),
    ReasonCode("GOV_OPERATOR_PAUSE", "operator", Severity.WARNING, True,
               "paused by an operator"),
    ReasonCode("GOV_OPERATOR_ACTION", "operator", Severity.INFO, False,
               "an operator command (ack, resolve, resume, promote, rollback)"),
    ReasonCode("GOV_ROLLOUT_TRANSITION", "rollout", Severity.INFO, False,
               "a rollout stage change, granted or refused; a version marked "
               "REEVALUATION_REQUIRED by drift; an evaluation result recorded"),
    ReasonCode("GOV_PAUSE_NOT_APPLIED", "runners", Severity.CRITICAL, False,
               "a runner has not acknowledged a control.pauses state published longer ago "
               "than the pause acknowledgement bound"),
    ReasonCode("GOV_RUNNER_SILENT", "runners", Severity.WARNING, False,
               "a runner that acknowledged pauses before (or a required one) sent no "
               "acknowledgement within the runner ack timeout"),
    ReasonCode("GOV_INVALID_INPUT", "input", Severity.WARNING, False,
               "an input message was dead-lettered"),
    ReasonCode("EXEC_SLIPPAGE_BREACH", "execution", Severity.CRITICAL, True,
               "slippage error outside its configured bound"),
    ReasonCode("EXEC_FILL_RATIO_LOW", "execution", Severity.WARNING, False,
               "fill ratio below its configured bound"),
    ReasonCode("EXEC_TRADE", "trade", Severity.INFO, False,
               "a runner's trade report (exec.trades, copied to audit.log); a runner may "
               "name its own EXEC_* code instead, never another registered one"),
]

REASON_CODES: dict[str, ReasonCode] = {reason.code: reason for reason in _CODES}


def reason(code: str) -> ReasonCode:
    """Look a code up; an unknown code is a programming error, so it raises."""
    try:
        return REASON_CODES[code]
    except KeyError:
        raise KeyError(f"unknown reason code {code!r}: add it to streams/reason_codes.py") from None
